"""Whether substitute models serve paid traffic, on a network played in simulated time.

Run from the repository root: ``python bench/integrity.py [--quick] [--fresh]`` (quick: 30
honest nodes, 6 substitutes, 2 honest-on-probes-only nodes, 3 simulated hours, answers to two
prompts recorded; ``--fresh`` records the answers again instead of reading the cache).

Real: the routing (:class:`coordinator.routing.Router`: least-loaded choice, ramp-up, health),
the probe schedule and its pure decisions (``ProbeSchedule.due``, ``may_probe``,
``may_examine``, ``draw_probe`` over the fingerprint source and the prompt pool, in the app's
order), the fingerprint judge (``FingerprintSource``'s judge, i.e. ``plausibility.compare``
against the reference run), the admission exam and quarantine
(:class:`coordinator.hub.admission.Admission`), removal at the offender threshold
(``points.day.removal_day``, as the keeper applies it to each fake verdict), the enrollment limits
(``accounts.identity.enrollment_refusal``), the re-scoring comparison (``compare``) and its peer
rule (``rescoring.may_verify_as_peer``), at the default constants. The answers are the real
models' (``bench/integrity_answers.py``), recorded once and replayed.

Simulated: time (one-second ticks, as the scheduler's ``tick_s``; no sleeping); the nodes (a
job takes its tokens over the node's speed; a fingerprint probe is answered with the recorded
answer of the node's kind to that prompt, a paid job's re-scoring replays a recorded answer and
its recorded scoring); paid traffic (Poisson arrivals, a day-night swing, completion lengths from
the probe pool's consumer spread); the I/O loops around the decisions (ProbeScheduler.tick and
_record, RescoringSampler.check, the keeper's record_fake, registration), whose few lines of
glue are re-played here where marked. Cheaters are worst cases: they tell probes from paid jobs
(honest-on-probes-only nodes answer every probe genuinely) and know their own fake-verdict count.
Left out: every sampled paid job is re-scored at once (the real sampler checks one at a time and
drops samples past a queue of 64); a cheater opens no second operator account (one machine, one
account, its limits); long-standing nodes are fully trusted peers from the start.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from dataclasses import replace

import harness  # the repository on the path
from integrity_answers import load_or_record
from integrity_machines import FULL, QUICK
from integrity_network import Network
from integrity_report import TARGET_SHARE, describe, judged_once, substitute_share


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    harness.quick_flag(parser)
    parser.add_argument("--fresh", action="store_true", help="record the answers again")
    parser.add_argument("--load", type=float, default=0.5,
                        help="mean share of the honest nodes' slots busy with paid jobs")
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        recording = await load_or_record(prompts=2, honest_setups=1, max_tokens=24,
                                         fresh=args.fresh)
        scenario = QUICK
    else:
        recording = await load_or_record(prompts=6, honest_setups=3, fresh=args.fresh)
        scenario = FULL
    print(f"Answers of the real models: {len(recording.prompts)} prompts x "
          f"{len(recording.answers)} kinds (recorded in {recording.seconds:.0f} s, or cached)")
    scenario = replace(scenario, load=args.load)
    control = Network(replace(scenario, exam=False), recording, args.seed)
    judged_once(recording, control)
    control.run()
    describe(control, "Control (no admission exam, no quarantine; removal at 3 fake verdicts)")
    network = Network(scenario, recording, args.seed)
    network.run()
    describe(network, "Defaults (exam of 3, quarantine, identity limits, peer re-scoring)")
    share, quarantined = substitute_share(network.tally), network.tally.honest_quarantined
    checks = [i.first_fake_check for i in network.identities if i.first_fake_check is not None]
    first = f"{statistics.median(checks):g} (max {max(checks)})" if checks else "never"
    harness.report(
        "integrity", "substitute share of paid tokens <= 0.1%, 0 honest quarantined",
        f"{share:.3%} of paid tokens by substitutes (substitute nodes "
        f"{network.tally.paid_tokens['substitute']:,}, honest-on-probes-only "
        f"{network.tally.paid_tokens['probes-only']:,} tokens; control without exam "
        f"{substitute_share(control.tally):.3%}); {quarantined} honest quarantined over "
        f"{network.tally.honest_exams:,} honest exams; first fake verdict after {first} check(s)",
        share <= TARGET_SHARE and quarantined == 0, quick=args.quick,
        share=share, control_share=substitute_share(control.tally),
        honest_quarantined=quarantined,
    )


if __name__ == "__main__":
    asyncio.run(main())
