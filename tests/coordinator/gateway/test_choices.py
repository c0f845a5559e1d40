"""``n`` choices through the official openai client and a real SmolLM2 agent: n answers, each its
own call billed as one, and the books add up; several choices are not streamed (a 400 naming n)."""

from __future__ import annotations

from support.cluster import AgentProcess, RunningCoordinator
from support.ledger_audit import audit

MODEL = "smollm2-135m-instruct"


async def test_n_choices_are_n_answers_billed_as_n_calls(
    coordinator: RunningCoordinator, smollm2_agent: AgentProcess
) -> None:
    client = await coordinator.client()
    completion = await client.chat.completions.create(
        model=MODEL, n=3, max_tokens=12, temperature=1.0, seed=7,
        messages=[{"role": "user", "content": "Name a colour."}],
    )
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    texts = [choice.message.content for choice in completion.choices]
    assert all(texts) and len(set(texts)) > 1, texts  # seeds 7, 8, 9: their own draws
    one = await client.chat.completions.create(
        model=MODEL, max_tokens=12, temperature=1.0, seed=7,
        messages=[{"role": "user", "content": "Name a colour."}],
    )
    assert one.choices[0].message.content == texts[0]  # choice 0 is the seed's own answer
    assert completion.usage is not None and one.usage is not None
    assert completion.usage.prompt_tokens == 3 * one.usage.prompt_tokens

    services = coordinator.services
    await services.ledger.flush()
    price = services.catalogue.get(MODEL)
    assert price is not None
    books = await audit(services.database, price.price.input_per_1m, price.price.output_per_1m)
    assert books.calls == 4
    assert books.unbalanced_transactions == 0 and books.balance_mismatches == 0
    assert books.charges_not_matching_tokens == 0 and books.open_holds == 0
    assert books.held_by_accounts == books.minted
