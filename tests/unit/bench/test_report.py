"""The benchmark summary: figures matched to the plan by key, peers beside our figure, ratios
against targets and peers, and a reason wherever something could not be measured."""

from __future__ import annotations

from bench.report import PLAN, Figure, Machine, Peer, Section, Target, complete, format_summary, merge, planned, status

MACHINE = Machine(cpus=2, load_start=1.5, load_end=2.25, load_max=3.0, seconds=600)


def _plan() -> tuple[Section, ...]:
    from bench.report import _p

    return (
        Section("codec", (
            _p("build", "build", "ms", "as4_bench", target=Target(0.6), peers={"as4 pkg": "as4_bench"}),
            _p("rate", "burst", "docs/s", "e2e_bench", target=Target(600), higher=True),
        )),
        Section("validation", (
            _p("validate", "validation CPU", "ms", "validation_bench", target=Target(peer="phive", factor=1.5),
               peers={"phive": "phive_bench"}),
        )),
    )  # fmt: skip


def test_a_peer_reported_by_another_bench_lands_beside_our_figure() -> None:
    ours = Figure("validate", value=12.0)
    theirs = Figure("validate", peers=(Peer("phive", 4.0),))
    outcomes = {"validation_bench": None, "phive_bench": None, "as4_bench": None, "e2e_bench": None}
    sections = complete(_plan(), [ours, theirs], outcomes)
    (f,) = dict(sections)["validation"]
    assert f.value == 12.0 and f.peers == (Peer("phive", 4.0),)
    assert f.target is not None and f.target.bound(f.peers) == 6.0
    assert status(f) == ("2.00", "not met")


def test_every_gap_says_why() -> None:
    outcomes = {"as4_bench": "as4_bench failed: RuntimeError('boom')", "e2e_bench": None}
    sections = dict(complete(_plan(), [Figure("build", value=0.5)], outcomes))
    build, rate = sections["codec"]
    assert build.value == 0.5 and build.peers[0].missing == "as4_bench failed: RuntimeError('boom')"
    assert rate.value is None and rate.missing == "e2e_bench ran but did not report it"
    (validate,) = sections["validation"]
    assert validate.missing == "validation_bench was not run"
    assert validate.peers[0].missing == "phive_bench was not run"
    assert status(validate) == ("", "-")


def test_a_bench_gives_its_own_reason() -> None:
    reported = [Figure("rate", missing="phase4 peer not built"), Figure("build", value=1.2)]
    sections = dict(complete(_plan(), reported, {"e2e_bench": None, "as4_bench": None}))
    assert sections["codec"][1].missing == "phase4 peer not built"


def test_higher_is_better_and_relative_target_without_its_peer() -> None:
    rate = Figure("rate", value=660.0, target=Target(600), higher_is_better=True)
    assert status(rate) == ("1.10", "met")
    slow = Figure("rate", value=110.0, target=Target(600), higher_is_better=True)
    assert status(slow) == ("0.18", "not met")
    relative = Figure("v", value=13.0, target=Target(peer="phive", factor=1.5), peers=(Peer("phive"),))
    assert status(relative) == ("", "no target")


def test_merge_keeps_the_value_reported_and_every_peer() -> None:
    (f,) = merge([
        Figure("k", "name", unit="ms", peers=(Peer("a"), Peer("b"))),
        Figure("k", value=2.0, peers=(Peer("a", 1.0),)),
        Figure("k", peers=(Peer("b", missing="not built"),)),
    ])  # fmt: skip
    assert (f.name, f.unit, f.value) == ("name", "ms", 2.0)
    assert f.peers == (Peer("a", 1.0), Peer("b", missing="not built"))


def test_the_summary_prints_ratios_peers_reasons_and_the_machine() -> None:
    reported = [
        Figure("build", value=0.75, peers=(Peer("as4 pkg", 15.0, note="wraps the SBDH itself"),)),
        Figure("rate", value=110.0),
    ]
    text = format_summary(complete(_plan(), reported, {"as4_bench": None, "e2e_bench": None}), MACHINE)
    lines = text.splitlines()
    build = next(line for line in lines if line.strip().startswith("build"))
    assert "0.750 ms" in build and "<= 0.600 ms" in build and "1.25" in build and "not met" in build
    assert "as4 pkg 15.0 (0.05)" in build
    assert any("as4 pkg: wraps the SBDH itself" in line for line in lines)
    rate = next(line for line in lines if line.strip().startswith("burst"))
    assert "110 docs/s" in rate and ">= 600 docs/s" in rate and "0.18" in rate
    assert "not measured: validation_bench was not run" in text
    assert "phive not measured: phive_bench was not run" in text
    assert "2 CPUs" in text and "1.50 at start" in text and "2.25 at end" in text


def test_the_plan_names_each_target_once() -> None:
    keys = [p.figure.key for p in planned(PLAN)]
    assert len(keys) == len(set(keys))
    targets = {p.figure.key: p.figure.target for p in planned(PLAN) if p.figure.target}
    assert targets["as4.build_10k"] == Target(0.6) and targets["as4.parse_10k"] == Target(0.8)
    assert targets["e2e.cpu_per_doc"] == Target(3.2) and targets["e2e.burst_rate"] == Target(600)
    assert targets["validation.cpu_per_doc"] == Target(peer="phive", factor=1.5)
