"""The sampling fields every OpenAI door takes, and what they mean on the wire (pure).

Chat Completions and the legacy Completions share these: temperature, top_p, stop, seed, the
penalties, ``logit_bias``, the extensions vLLM and llama.cpp's server accept (``top_k``, ``min_p``,
``repetition_penalty``), and the response format. Each request type adds its own fields and the
parameters it refuses by name. A ``null`` optional field means its default, as many SDKs send it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from protocol.chat import MAX_LOGIT_BIAS, SamplingParams
from protocol.constraints import ANY_JSON_OBJECT, schema_problem


def refused(message: str, param: str | None = None) -> PydanticCustomError:
    """A refusal; ``param`` names the parameter where the error's location cannot."""
    return PydanticCustomError("unsupported_parameter", message, {"param": param})


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_object"]


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = Field(default=None, max_length=10_000)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None  # every answer follows the schema, strict or not: it is enforced


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec

    @model_validator(mode="after")
    def _compiles(self) -> JsonSchemaFormat:
        problem = schema_problem(self.json_schema.schema_)
        if problem is not None:
            raise refused(
                f"response_format: the JSON schema cannot be enforced: {problem}",
                "response_format",
            )
        return self


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


def answer_schema(response_format: TextFormat | JsonObjectFormat | JsonSchemaFormat | None) -> (
    dict[str, Any] | None
):
    """The JSON schema every answer must follow under ``response_format`` (None: free text)."""
    if isinstance(response_format, JsonObjectFormat):
        return ANY_JSON_OBJECT
    if isinstance(response_format, JsonSchemaFormat):
        return response_format.json_schema.schema_
    return None


class SamplingRequest(BaseModel):
    """The fields of a generation request that become its :class:`SamplingParams`."""

    model_config = ConfigDict(extra="forbid")
    UNSUPPORTED: ClassVar[dict[str, str]] = {}
    """Parameters the API documents that Koretex does not honour: refused by name."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = Field(default=None, max_length=MAX_LOGIT_BIAS)
    # Extensions as vLLM and llama.cpp's server take them (-1 is their "off" for top_k).
    top_k: int | None = Field(default=None, ge=-1, le=1_000_000)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=10.0)
    user: str | None = Field(default=None, max_length=256)  # attribution: accepted, not used

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults_and_unsupported_are_named(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for name in cls.UNSUPPORTED.keys() & value.keys():
            if value[name] is not None:
                raise refused(f"{name}: {cls.UNSUPPORTED[name]}", name)
        cls.refuse(value)
        return {
            key: item for key, item in value.items()
            if item is not None and key not in cls.UNSUPPORTED
        }

    @classmethod
    def refuse(cls, value: dict[str, Any]) -> None:
        """Refuse what the fields' shapes allow but Koretex cannot honour (reads only what is
        well formed: the fields check their shapes afterwards)."""

    @field_validator("logit_bias")
    @classmethod
    def _biases_name_tokens(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for token, bias in (value or {}).items():
            if not token.isdigit() or len(token) > 9:
                raise ValueError(f"{token!r} is not a token id")
            if not -100.0 <= bias <= 100.0:
                raise ValueError(f"the bias of token {token} must lie in [-100, 100]")
        return value

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(s for s in self.stop if s)

    def sampling(self, max_tokens: int, json_schema: dict[str, Any] | None) -> SamplingParams:
        """The wire's sampling parameters for a job of ``max_tokens``."""
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=self.stop_sequences(),
            seed=self.seed,
            top_k=max(0, self.top_k or 0),
            min_p=self.min_p or 0.0,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            repetition_penalty=self.repetition_penalty or 1.0,
            logit_bias={int(token): bias for token, bias in (self.logit_bias or {}).items()},
            json_schema=json_schema,
        )
