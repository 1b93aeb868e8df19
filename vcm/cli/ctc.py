from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vcm.cli.app import app
from vcm.cli.common import JOBS_MAX, JsonOpt, print_json, refuse_unused, start, table
from vcm.words import counted

ctc_app = typer.Typer(help="The MPEG VCM CTC experiment: run every point, then report.", no_args_is_help=True)
app.add_typer(ctc_app, name="ctc")


def _split(text: Optional[str]) -> Optional[list[str]]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@ctc_app.command("run")
def ctc_run(
    config: Path = typer.Argument(..., help="Experiment config: a YAML file (e.g. my-sweep.yaml), or a config vcm ships, by its name: sfu-cd (SFU-HW classes C and D), demo."),
    out: Path = typer.Option(Path("ctc"), "--out", "-o", help="Results folder (re-running resumes it)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Folder with the SFU-HW YUVs."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Folder with the CTC ground-truth JSONs."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated sequences to run."),
    codecs: Optional[str] = typer.Option(None, "--codecs", help="Comma-separated codecs to run (default: all in the config)."),
    jobs: int = typer.Option(1, "--jobs", min=1, max=JOBS_MAX, help="Points run in parallel."),
    backend: str = typer.Option("local", "--backend", help="local (process pool) or ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="An existing Ray cluster (default: RAY_ADDRESS, else a Ray of vcm's own)."),
    force: bool = typer.Option(False, "--force", metavar="", help="Redo finished points."),
    device: Optional[str] = typer.Option(None, "--device", help="Override the config's device."),
    compute: Optional[float] = typer.Option(None, "--compute", metavar="K", help="K times the training of every network (each fit's steps and its points' stages'), where a fit sets no compute of its own: what the same config gives a faster machine or a GPU."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List every point with its state (finished, changed, failed, to run, missing an input), the networks to train and the optimiser steps each point would take, also before the SFU-HW videos or a checkpoint are at hand; run and write nothing."),
    json_out: bool = JsonOpt,
) -> None:
    """Encode, decode and evaluate every (sequence, codec, rate point); finished points are reused."""
    from vcm.ctc.run import preview, run

    start()
    if backend == "local":  # it was ignored without a word
        refuse_unused([("--ray-address", ray_address)], "--backend local", "it names a Ray cluster; add --backend ray")
    if dry_run:
        plan = preview(config, out, data, annotations, _split(only), _split(codecs), backend, force, device, compute,
                       ray_address)
        _show_plan(plan, json_out)
        return
    r = run(config, out, data, annotations, _split(only), _split(codecs), jobs, backend, ray_address, force, device,
            compute)
    if json_out:
        print_json({k: v for k, v in r.items() if k != "rows"})
    else:
        table("vcm ctc run", [("results", r["out"]), ("points", str(r["points"])), ("ran", str(r["ran"])),
                              ("reused", str(r["reused"])), ("failed", str(r["failed"]))]
              + ([("left to another run", str(r["elsewhere"]))] if r["elsewhere"] else []))
    if r["failed"]:  # recorded in the results; the exit code tells scripts
        raise typer.Exit(1)


def _show_plan(p: dict, json_out: bool) -> None:
    """``vcm ctc run --dry-run``'s table: one row a point, then the counts."""
    if json_out:
        print_json(p)
        return
    from rich.table import Table

    from vcm.cli.common import out as stdout

    t = Table(title=f"vcm ctc run --dry-run: {p['out']} (nothing run or written)", title_justify="left")
    for col in ("sequence", "codec", "point", "state", "steps"):  # steps: optimiser steps; a long id folds, whole
        t.add_column(col, justify="right" if col == "steps" else "left", overflow="fold")
    for row in p["plan"]:
        t.add_row(row["sequence"], row["codec"], row["point"], row["state"], _steps_cell(row.get("steps")))
    stdout.print(t)
    by_control = p["stages_by_rate_control"]
    stdout.print(f"{counted(p['points'], 'point')}: {p['finished']} finished (reused), "
                 f"{p['changed']} finished from another "
                 f"config (run again), {p['failed']} failed before (run again), "
                 f"{p['to_run']} to run, {p['after_anchors']} after the anchors"
                 + (f", {p['missing_input']} missing an input" if p["missing_input"] else "") + "; "
                 f"{counted(p['networks_to_train'], 'network')} to train: {p['fit_steps']:,} optimiser steps of fits "
                 f"and {p['stage_steps']:,} of the points' stages"
                 + (f", besides the trials of {counted(by_control, 'rate-control search', 'rate-control searches')}"
                    if by_control else ""), soft_wrap=True)
    for why in p["unread"]:
        stdout.print(f"steps not counted for {why}", soft_wrap=True)
    if p["missing"]:  # the plan is shown before the data or weights are at hand; the run itself refuses
        stdout.print("the run needs what is missing (a missing sequence's steps are counted on the frames the "
                     "manifest gives it):", soft_wrap=True)
        for why in p["missing"]:
            stdout.print(f"  {why}", soft_wrap=True)


def _steps_cell(steps: dict | None) -> str:
    """A plan row's optimiser steps: the fit's where this point is the first to train it (those left of a
    stopped one, of its total), then its stage's."""
    if not steps:
        return ""
    if "unread" in steps:
        return "?"
    stage = "rate control" if steps["stage"] is None else f"{steps['stage']:,}"
    if not steps["fit"]:
        return stage
    left = f" of {steps['fit'] + steps['fit_done']:,}" if steps.get("fit_done") else ""  # a stopped fit resumes
    return f"fit {steps['fit']:,}{left} + {stage}"


@ctc_app.command("report")
def ctc_report(
    out: Path = typer.Argument(Path("ctc"), help="A results folder of vcm ctc run."),
    anchor: Optional[str] = typer.Option(None, "--anchor", help="Curve the BD figures are measured against (default: vvc, else hevc, whichever the results hold)."),
    monotone: Optional[bool] = typer.Option(None, "--monotone/--no-monotone", show_default=False, help="Fit each curve monotonically before BD, or none."),
    monotone_map: bool = typer.Option(False, "--monotone-map", help="Fit only the mAP curves monotonically (as vcm demo's report)."),
    screenshot: Optional[Path] = typer.Option(None, "--screenshot", help="Also render report.html in headless Chromium to this PNG."),
    metric: Optional[str] = typer.Option(None, "--metric", help="Quality of the plots and BD figures: psnr_y (default), psnr_yuv (6:1:1) or psnr (RGB)."),
    annotations: Optional[Path] = typer.Option(None, "--annotations", help="Ground truth for class pooling (default: as in the run)."),
    json_out: bool = JsonOpt,
) -> None:
    """summary.csv, BD-rate tables, RD plots and report.md / report.html.

    Settings not given are those of the folder's last report, if it has one (a report made again is the same), else the defaults.
    """
    from vcm.errors import VcmError
    from vcm.ctc.report import make_report

    start()
    if monotone_map and monotone is not None:
        raise VcmError("--monotone-map fits only the mAP curves; it goes with neither --monotone nor --no-monotone")
    r = make_report(out, anchor, monotone, annotations, metric, monotone_map=monotone_map, as_last=True)
    if screenshot is not None:
        from vcm.ctc.screenshot import screenshot as take

        r["screenshot"] = str(take(Path(r["report_html"]), screenshot))
    if json_out:
        print_json(r)
        return
    table("vcm ctc report", [("summary", r["summary_csv"]), ("report", r["report_html"]),
                             ("points", f"{r['points']} ({r['failed']} failed"
                                        + (f", {r['unfinished']} without a result yet" if r["unfinished"] else "")
                                        + ")")])


@ctc_app.command("compare")
def ctc_compare(
    folders: list[Path] = typer.Argument(..., metavar="BASE NEW [BASE NEW ...]", show_default=False,
                                         help="Results folders of the codec before (BASE, a vcm ctc run --out) and "
                                              "after (NEW, the same sequences and frames), in pairs: one pair a start "
                                              "(seed). A folder may hold results folders (benchmarks/dev_clips.py "
                                              "--out: one per clip, paired by name)."),
    metric: str = typer.Option("psnr_y", "--metric", help="Quality of the BD figures: psnr_y (default), psnr_yuv (6:1:1) or psnr (RGB)."),
    monotone: bool = typer.Option(False, "--monotone", help="Fit each curve monotonically before BD."),
    monotone_map: bool = typer.Option(False, "--monotone-map", help="Fit only the mAP curves monotonically (as vcm demo's report)."),
    points: bool = typer.Option(False, "--points", help="Also list both curves' points (kbps @ quality)."),
    json_out: bool = JsonOpt,
) -> None:
    """BD-rate of every curve of NEW against the same curve of BASE, on quality and mAP, each with its overlap.

    Curves are matched by codec, sequence and frames. This is how a codec change is judged: negative, NEW needs fewer bits.

    With several pairs (runs from several starts), each curve's figures in every pair, their mean, the spread of the starts (either side's later runs against its first; a figure withheld for its overlap counts as its extrapolation) and a verdict: fewer or more bits beyond that spread, or within it.

    Curves that only one side holds (anchors a run left out) are named in a line under the table.
    """
    from rich.table import Table

    from vcm.cli.common import out as stdout
    from vcm.ctc.bd import describe
    from vcm.ctc.compare import compare
    from vcm.errors import VcmError

    start()
    if len(folders) % 2:
        raise VcmError(f"compare takes folders in pairs, BASE NEW [BASE NEW ...]; got {counted(len(folders), 'folder')}")
    if monotone_map and monotone:  # --monotone bends the mAP curves too: one of the two went unread
        raise VcmError("--monotone-map fits only the mAP curves; --monotone fits every curve; give one")
    if points and json_out:  # the JSON holds every curve's points (base_points, new_points) with or without it
        refuse_unused([("--points", points)], "--json", "the JSON holds each curve's base_points and new_points")
    bends = frozenset({metric, "map"} if monotone else {"map"} if monotone_map else ())
    pairs = list(zip(folders[::2], folders[1::2]))
    if len(pairs) > 1 or not all((f / "points").is_dir() for f in folders):
        _show_judgement(pairs, metric, bends, points, json_out)
        return
    base, new = pairs[0]
    r = compare(base, new, metric, bends)
    if json_out:
        print_json(r)
        return
    t = Table(title=f"vcm ctc compare: {r['new']} against {r['base']}", title_justify="left")
    for col in ("sequence", "curve", f"BD-rate ({metric})", "BD-rate (mAP)"):
        t.add_column(col)
    for c in r["curves"]:
        if _unpaired(c):
            continue
        if "note" in c:
            t.add_row(c["sequence"], c["curve"], c["note"], "")
        else:
            t.add_row(c["sequence"], c["curve"], *(describe(c[f"bd_rate_{m}"], c[f"overlap_{m}"], c[f"withheld_{m}"],
                                                            _short(c[f"note_{m}"])) for m in (metric, "map")))
    stdout.print(t)
    for line in _unpaired_lines(r["curves"], lambda c: c["sequence"]):
        stdout.print(line, soft_wrap=True)
    for c in r["summary"]:
        mean = "" if c["mean_bd_rate"] is None else f", mean {c['mean_bd_rate']:+.1f} %"
        unshown = c["sequences"] - c["shown"]
        stdout.print(f"{c['curve']}: fewer bits ({metric}) on {c['fewer_bits']} of "
                     f"{counted(c['sequences'], 'sequence')}"
                     + (f" ({counted(unshown, 'figure')} withheld or not measured)" if unshown else "")
                     + mean, soft_wrap=True)
    if points:
        for c in r["curves"]:
            for side in ("base", "new"):
                listed = " · ".join(f"{k:.2f} @ {q:.2f}" if q is not None else f"{k:.2f}" for k, q in c[f"{side}_points"])
                stdout.print(f"{c['sequence']} {c['curve']}, {side}: {listed or 'none'}", soft_wrap=True)


def _show_judgement(pairs: list[tuple[Path, Path]], metric: str, bends: frozenset, points: bool, json_out: bool) -> None:
    """``vcm ctc compare`` over several pairs, or over folders of results folders (:mod:`vcm.ctc.judge`)."""
    from rich.table import Table

    from vcm.cli.common import out as stdout
    from vcm.ctc.judge import judge
    from vcm.errors import VcmError

    if points:  # it listed nothing and said so, after the table
        raise VcmError("--points lists the curves of one pair of results folders: vcm ctc compare BASE NEW --points")
    r = judge(pairs, metric, bends)
    if json_out:
        print_json(r)
        return
    maps = any(f["bd_rate"] is not None for c in r["curves"] for f in c.get("pairs_map", []))
    t = Table(title=f"vcm ctc compare: {counted(len(pairs), 'pair')} of runs, NEW against BASE", title_justify="left")
    for col in ("clip", "sequence", "curve", f"BD-rate ({metric}) per pair", "mean", "spread", "verdict") + \
            (("BD-rate (mAP) per pair",) if maps else ()):
        t.add_column(col, overflow="fold")
    for c in r["curves"]:
        where = (c["set"] or "–", c["sequence"], c["curve"])
        if _unpaired(c):
            continue
        if "note" in c:
            t.add_row(*where, c["note"], "", "", "")
            continue
        per = " · ".join(_figure_cell(f) for f in c[f"pairs_{metric}"])
        mean = "–" if c[f"mean_{metric}"] is None else f"{c[f'mean_{metric}']:+.1f} %"
        spread = _spread_cell(c)
        t.add_row(*where, per, mean, spread, c["verdict"],
                  *((" · ".join(_figure_cell(f) for f in c["pairs_map"]),) if maps else ()))
    stdout.print(t)
    for line in _unpaired_lines(r["curves"], lambda c: c["set"] or c["sequence"]):
        stdout.print(line, soft_wrap=True)
    for c in r["summary"]:
        beyond = c["fewer bits beyond the spread"]
        if len(pairs) == 1:
            stdout.print(f"{c['curve']}: one pair gives no spread to judge against; run each side from more starts "
                         f"(BASE NEW BASE NEW ...)", soft_wrap=True)
            continue
        stdout.print(f"{c['curve']}: fewer bits beyond the spread on {beyond} of {counted(c['judged'], 'curve')} "
                     f"judged ({c['more bits beyond the spread']} more bits beyond it, {c['within the spread']} within "
                     f"it, {c['not judged']} not judged)", soft_wrap=True)


def _unpaired(c: dict) -> bool:
    """Whether a compared row is a curve that only one side holds (an anchor the other run left out, say)."""
    return "only_in" in c


def _unpaired_lines(curves: list[dict], place) -> list[str]:
    """One line per side for the curves only that side holds, with where (``place(row)``), instead of a table row
    each: a run made with fewer codecs (``benchmarks/dev_clips.py --codecs hinerv``) would fill the table with them."""
    from vcm.codecs import curve_order

    lines = []
    for side in ("base", "new"):
        rows = [c for c in curves if c.get("only_in") == side]
        if rows:
            names = sorted({c["curve"] for c in rows}, key=curve_order)
            places = sorted({place(c) for c in rows})
            lines.append(f"not compared, only in {side.upper()}: {', '.join(names)} (on {', '.join(places)})")
    return lines


def _spread_cell(c: dict) -> str:
    """A judged curve's spread (the larger side's) in a cell: ``±4.0 %``, noting a withheld figure it counts;
    ``one start`` with a single pair; ``n/a`` where a start's figure is missing."""
    if c["spread"] is None:
        return "n/a" if "spread_note" in c else "one start"
    return f"±{c['spread']:.1f} %" + (" (counts a withheld figure)" if "spread_note" in c else "")


def _figure_cell(f: dict) -> str:
    """One pair's figure in a cell: ``-3.1 % (92 %)``, ``withheld 41 % (+12.0 %)``, or why there is none."""
    if f["bd_rate"] is None:
        return "n/a"
    overlap = f"{100 * f['overlap']:.0f} %" if f["overlap"] is not None else ""
    return f"withheld {overlap} ({f['bd_rate']:+.1f} %)" if f["withheld"] else f"{f['bd_rate']:+.1f} % ({overlap})"


def _short(note: str | None) -> str | None:
    """A BD figure's note in a table cell: a curve that does not rise says so in a line (--json has it in full)."""
    if note and "does not rise" in note:
        return "a curve's quality does not rise with its rate; --monotone or --monotone-map fits it first"
    return note
