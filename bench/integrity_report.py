"""What ``bench/integrity.py`` prints of a simulated run: who was paid, who was caught, and how."""

from __future__ import annotations

import statistics
from collections import Counter

from integrity_answers import SUBSTITUTES, Recording
from integrity_machines import Tally
from integrity_network import Network

from coordinator.probes.plausibility import compare

TARGET_SHARE = 0.001


def substitute_share(tally: Tally) -> float:
    total = sum(tally.paid_tokens.values())
    cheated = tally.paid_tokens["substitute"] + tally.paid_tokens["probes-only"]
    return cheated / total if total else 0.0


def describe(network: Network, label: str) -> None:
    tally, s = network.tally, network.scenario
    total = sum(tally.paid_tokens.values())
    print(f"\n{label}: {s.honest} honest, {s.substitutes} substitute and {s.probes_only} "
          f"honest-on-probes-only nodes, {s.hours:g} h, {network.mean_rate:.1f} paid requests/s "
          f"on average (mean load {s.load:.0%} of honest slots, ±40% day and night)")
    print(f"  paid tokens: {total:,}; unserved requests: {tally.unserved:,}")
    for role in ("honest", "substitute", "probes-only"):
        share = tally.paid_tokens[role] / total if total else 0.0
        print(f"    {role:12} {tally.paid_tokens[role]:>14,}  {share:8.4%}")
    print(f"  substitute share of paid tokens (substitutes + probes-only): "
          f"{substitute_share(tally):.4%} (goal <= {TARGET_SHARE:.1%})")
    subs = [i for i in network.identities if i.machine.role == "substitute"]
    checks = [i.first_fake_check for i in subs if i.first_fake_check is not None]
    seconds = [i.first_fake_at for i in subs if i.first_fake_at is not None]
    ends = Counter(i.ended for i in subs)
    print(f"  substitute identities: {len(subs)} ({', '.join(f'{n} {e}' for e, n in ends.items())})"
          f"; never caught: {sum(i.first_fake_check is None for i in subs)}")
    if checks:
        print(f"  fingerprint checks until the first fake verdict: median "
              f"{statistics.median(checks):g}, max {max(checks)}; seconds from connect: median "
              f"{statistics.median(seconds):.0f}, max {max(seconds):.0f}")
    for kind in SUBSTITUTES:
        served = sum(i.paid_tokens for i in subs if i.machine.paid_kind == kind)
        count = sum(i.machine.paid_kind == kind for i in subs)
        print(f"    {kind:14} identities {count:4d}, paid tokens {served:,}")
    honest_kinds = network.recording.honest_kinds()
    print(f"  honest: {tally.honest_exams:,} exams sat ({tally.honest_reexams:,} of them after a "
          f"peer disagreement; {tally.honest_exam_checks:,} exam checks), "
          f"{tally.honest_verdicts:,} fingerprint verdicts (replays of "
          f"{len(honest_kinds) * len(network.recording.prompts)} distinct recorded answers), "
          f"quarantined by their own answer: {tally.honest_quarantined}")
    reexam = "sends both to a re-exam" if s.exam else "no exam to send them to"
    print(f"  re-scored paid jobs {tally.rescored:,} ({tally.unverified:,} found no peer); a peer "
          f"disagreement ({reexam}) involved honest nodes {tally.disagreements['honest']:,} "
          f"times, honest-on-probes-only nodes {tally.disagreements['probes-only']:,} times, "
          f"substitutes {tally.disagreements['substitute']:,}")
    print(f"  disputes corroborated by peers of {network.authenticity.peer_corroboration} "
          f"operators (a fake verdict): honest-on-probes-only nodes "
          f"{tally.corroborated['probes-only']:,}, honest nodes {tally.corroborated['honest']:,}")


def judged_once(recording: Recording, network: Network) -> None:
    """Each recorded answer meets the real judges once: the sim only replays these verdicts."""
    tolerances = network.authenticity.tolerances
    print("Recorded answers, judged once by the real code (the simulation replays them):")
    for kind, answers in recording.answers.items():
        fingerprint = Counter(
            compare(answer, stored.tokens, tolerances, divergence_allowed=True).verdict
            for answer, stored in zip(answers, recording.fingerprint.answers, strict=True)
        )
        rescored = Counter(
            compare(answer, scored, tolerances).verdict
            for answer, scored in zip(answers, recording.scored[kind], strict=True)
        )
        print(f"  {kind:32} fingerprint {dict(fingerprint)}; re-scoring {dict(rescored)}")


