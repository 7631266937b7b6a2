"""The report's figures say what they show: compared panels share one y-scale, every mark is explained, seed std is
a per-target ratio to pretrained on a log axis that holds 1, fused vs intertrained and the spread have figures,
titles fit, and every confirmatory claim gets its own figure. On the page every image sits in a <figure> with a
caption and every table in a box that scrolls sideways. Expected numbers are worked out by hand."""
from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path

import pytest

from basefuse.experiments.records import RunRecord
from basefuse.reports import plots, render
from basefuse.reports.build import build_report
from basefuse.reports.claims import NOT_MEASURED, Claim
from basefuse.reports.summary import summarize

# ---- a nine-target run (the paper's targets), three seeds ---------------------------------------------------------

FAMILIES = {"reviews": ["rotten_tomatoes", "vader_amazon", "vader_nyt"],
            "twitter": ["crowdflower_twitter_sentiment", "trump_tweet_device", "vader_tweets"],
            "topic": ["bbc_news", "sms_spam", "trec_coarse"]}
TARGETS = [t for ts in FAMILIES.values() for t in ts]
FAMILY = {t: f for f, ts in FAMILIES.items() for t in ts}
PRE_SEEDS = (-2.0, 0.0, 2.0)  # pretrained's accuracy per seed around its target level: seed std 2 points
FUSED_GAIN = [15.0, 14.0, 16.0, 0.2, 0.3, 0.2, 1.0, -1.0, 0.0]  # per target: large on reviews, tiny on twitter
INTER_GAIN = [1.0, 2.0, 3.0, -1.0, 0.0, 1.0, 0.5, 0.5, -0.5]


def nine_target_rows() -> list[dict]:
    """pretrained, fused (all) and each family's intertrained base on 9 targets x 3 seeds (accuracy fractions).
    fused has half pretrained's seed spread (seed std 1 point), intertrained the same (2 points)."""
    rows = []

    def add(cond, fam, target, seed, points):
        rows.append(dict(target=target, target_family=FAMILY[target], condition=cond, source_family=fam, seed=seed,
                         accuracy=points / 100, macro_f1=0.5, job_key=f"{cond}-{fam}-{target}-{seed}"))

    for j, t in enumerate(TARGETS):
        level = 60.0 + 3 * j
        for seed, d in enumerate(PRE_SEEDS):
            add("pretrained", None, t, seed, level + d)
            add("fused", "all", t, seed, level + d + FUSED_GAIN[j] - d / 2)  # gain per seed: FUSED_GAIN - d/2
            add("intertrained", FAMILY[t], t, seed, level + d + INTER_GAIN[j])
    return rows


def nine_target_records() -> list[RunRecord]:
    return [RunRecord(**r) for r in nine_target_rows()]


def write_nine_target_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text("\n".join(json.dumps(r) for r in nine_target_rows()) + "\n")
    (run / "experiment.yaml").write_text("seeds: [0, 1, 2]\n")
    return run


@pytest.fixture(scope="module")
def summary():
    return summarize(nine_target_records())


@pytest.fixture
def drawn(monkeypatch):
    """Keep each figure a plot function makes (drawn, not written) instead of saving and closing it."""
    figs = []

    def keep(fig, path):
        fig.canvas.draw()
        figs.append(fig)
        return True

    monkeypatch.setattr(plots, "_save", keep)
    yield figs
    plots._pyplot().close("all")


def points(ax, marker: str) -> list[tuple[float, float]]:
    """(x, y) of every point drawn with `marker` (no line) on `ax`."""
    return [(float(x), float(y)) for line in ax.get_lines() if line.get_marker() == marker
            and line.get_linestyle() in ("None", "") for x, y in zip(line.get_xdata(), line.get_ydata())]


def legend_texts(fig) -> set[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return {t.get_text() for leg in legends for t in leg.get_texts()}


# ---- the standard figures ----------------------------------------------------------------------------------------

def test_gain_panels_share_one_y_scale_so_a_small_gain_looks_small(summary, drawn):
    assert plots.plot_target_gains(summary, Path("unused.png"))
    fig = drawn[0]
    panels = {ax.get_title(loc="left").split(":")[0]: ax for ax in fig.axes}
    assert set(panels) == {"fused (all)", "intertrained (reviews)", "intertrained (twitter)", "intertrained (topic)"}
    limits = {ax.get_ylim() for ax in panels.values()}
    assert len(limits) == 1  # one y-scale for every panel
    lo, hi = limits.pop()
    # the fused panel's largest seed gain is 16 + 1 = 17 (seed 0: FUSED_GAIN - (-2)/2); every panel shows it
    assert hi >= 17 and lo <= -1.5
    # on the twitter intertrained panel (gains within [-1, 1]) the +0.2 to +0.3 fused gains would fill the axis if
    # it were scaled alone; on the shared scale its data span is under a sixth of the axis
    twitter = panels["intertrained (twitter)"]
    ys = [y for _, y in points(twitter, "o")]
    assert (max(ys) - min(ys)) / (hi - lo) < 1 / 6


def test_gain_figure_explains_every_mark(summary, drawn):
    plots.plot_target_gains(summary, Path("unused.png"))
    assert legend_texts(drawn[0]) == {"gain on one seed", "target mean over seeds", "target 95% t-interval over seeds",
                                      "mean over targets", "its 95% interval"}
    # the caption names the thin line and says the panels share a scale
    assert "thin vertical line = that target's 95% t-interval over seeds" in plots.GAINS_CAPTION
    assert "one y-scale" in plots.GAINS_CAPTION


def test_seed_std_figure_shows_per_target_ratios_to_pretrained_on_a_log_axis_holding_1(summary, drawn):
    assert plots.plot_seed_std(summary, Path("unused.png"), nine_target_records())
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    assert lo < 1 < hi
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.get_lines())  # the reference line at 1
    # per target: fused's seeds deviate by -1, 0, +1 (std 1), pretrained's by -2, 0, +2 (std 2); intertrained's
    # like pretrained's. With the 0.02-point floor: (1 + 0.02) / (2 + 0.02) and (2 + 0.02) / (2 + 0.02)
    dots = points(ax, "o")
    fused = sorted(y for x, y in dots if x < 0.5)
    inter = sorted(y for x, y in dots if x > 0.5)
    assert fused == pytest.approx([1.02 / 2.02] * 9, rel=1e-9)
    assert inter == pytest.approx([1.0] * 9, rel=1e-9)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fused (all)", "intertrained (reviews)",
                                                            "intertrained (topic)", "intertrained (twitter)"]


def test_seed_std_axis_holds_1_even_when_every_ratio_is_below_it(summary, drawn):
    fused_only = [r for r in nine_target_records() if r.condition in ("pretrained", "fused")]
    assert plots.plot_seed_std(summary, Path("unused.png"), fused_only)
    ax = drawn[0].axes[0]
    assert max(y for _, y in points(ax, "o")) == pytest.approx(1.02 / 2.02)
    lo, hi = ax.get_ylim()
    assert lo < 1.02 / 2.02 and hi > 1


def test_seed_std_ratios_pair_the_seeds_both_bases_ran():
    recs = [RunRecord(target="t", target_family="A", condition=c, source_family=f, seed=s, accuracy=a, macro_f1=0.5)
            for c, f, accs in (("pretrained", None, (0.60, 0.64, 0.70)), ("fused", "all", (0.61, 0.62)))
            for s, a in enumerate(accs)]
    # fused ran seeds 0 and 1 only: pretrained's std over those two seeds (60, 64) is 2*sqrt(2), fused's (61, 62)
    # is sqrt(2)/2
    (a, b, n), = plots.seed_std_ratios(recs, 0.0)["fused (all)"].values()
    assert (a, b, n) == (pytest.approx(math.sqrt(2) / 2), pytest.approx(2 * math.sqrt(2)), 2)


def test_fused_vs_intertrained_figure_shows_each_targets_difference(summary, drawn):
    assert plots.plot_fused_vs_intertrained(summary, Path("unused.png"))
    ax = drawn[0].axes[0]
    big = sorted(points(ax, "o"))
    # fused minus intertrained per target: mean over seeds of (FUSED_GAIN - d/2) - INTER_GAIN = FUSED - INTER
    assert [y for _, y in big] == pytest.approx([f - i for f, i in zip(FUSED_GAIN, INTER_GAIN)])
    assert [t.get_text() for t in ax.get_xticklabels()] == TARGETS
    assert any(list(line.get_ydata()) == [0, 0] for line in ax.get_lines())


def test_spread_figure_sets_fused_and_intertrained_per_target_gains_side_by_side(summary, drawn):
    assert plots.plot_spread(summary, Path("unused.png"))
    ax = drawn[0].axes[0]
    dots = points(ax, "o")
    assert sorted(y for x, y in dots if x < 0.5) == pytest.approx(sorted(FUSED_GAIN))
    assert sorted(y for x, y in dots if x > 0.5) == pytest.approx(sorted(INTER_GAIN))
    assert set(TARGETS) <= legend_texts(drawn[0])  # the colours name the targets


LONG = "fused[dare-ties-with-a-rather-long-method-name-to-stretch-every-title] (all)"


def test_titles_fit_inside_the_figure_width(drawn):
    rows = [r | {"condition": "fused[dare-ties-with-a-rather-long-method-name-to-stretch-every-title]"}
            if r["condition"] == "fused" else r for r in nine_target_rows()]
    recs = [RunRecord(**r) for r in rows]
    s = summarize(recs)
    for draw in (plots.plot_target_gains, plots.plot_fused_vs_intertrained, plots.plot_spread):
        assert draw(s, Path("unused.png"))
    assert plots.plot_seed_std(s, Path("unused.png"), recs)
    claim = Claim("C2", "fused vs intertrained, pooled over every target that has both", "", LONG,
                  "intertrained (each target's own family)", "gain (points)", "points", values={"t": 1.0},
                  estimate=1.0, n=1, verdict="inconclusive")
    assert plots.plot_claim(claim, Path("unused.png"))
    assert len(drawn) == 5
    for fig in drawn:
        width = fig.bbox.width
        title = fig._suptitle
        box = title.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= width, (title.get_text(), box, width)


def test_report_figures_names_titles_and_captions(tmp_path, summary):
    drawn = plots.report_figures(summary, tmp_path, nine_target_records())
    assert [d.filename for d in drawn] == ["gains_per_target.png", "fused_vs_intertrained.png", "spread.png",
                                           "seed_std.png"]
    assert all(d.title and d.caption for d in drawn)
    assert all((tmp_path / d.filename).read_bytes().startswith(b"\x89PNG") for d in drawn)


# ---- one figure per confirmatory claim ---------------------------------------------------------------------------

def points_claim(**kw) -> Claim:
    base = dict(id="C1", title="fused vs pretrained", paper="fusing improves the base", a="fused (all)",
                b="pretrained", measure="gain (points)", scale="points",
                values={"rotten_tomatoes": 2.0, "sms_spam": -0.5, "trec_coarse": 3.5}, estimate=1.6667,
                interval=(-0.9, 4.2), n=3, seeds=(3, 3), p=0.25, p_holm=0.75, verdict="inconclusive")
    return Claim(**(base | kw))


def test_claim_figure_shows_each_target_the_estimate_its_interval_and_0(drawn):
    assert plots.plot_claim(points_claim(), Path("unused.png"))
    fig = drawn[0]
    ax = fig.axes[0]
    assert points(ax, "o") == [(0.0, 2.0), (1.0, -0.5), (2.0, 3.5)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["rotten_tomatoes", "sms_spam", "trec_coarse", "estimate"]
    (est,) = [line for line in ax.get_lines() if line.get_marker() == "s"]
    assert list(est.get_ydata()) == [1.6667]
    bars = [seg for c in ax.collections for seg in c.get_segments()]
    assert any(seg[0][1] == pytest.approx(-0.9) and seg[1][1] == pytest.approx(4.2) for seg in bars)
    assert any(list(line.get_ydata()) == [0, 0] for line in ax.get_lines())
    assert ax.get_yscale() == "linear"
    title = fig._suptitle.get_text().replace("\n", " ")
    assert title == "C1 fused vs pretrained (fused (all) vs pretrained): inconclusive, n = 3 targets, p (Holm) = 0.750"


def test_ratio_claim_is_drawn_as_ratios_on_a_log_axis_with_1(drawn):
    claim = points_claim(id="C5", title="seed std, fused vs pretrained", measure="log seed-std ratio", scale="ratio",
                         values={"a": math.log(0.5), "b": math.log(0.8), "c": math.log(2.0)}, estimate=0.9283,
                         interval=(0.4, 2.1), verdict="inconclusive")
    assert plots.plot_claim(claim, Path("unused.png"))
    ax = drawn[0].axes[0]
    assert ax.get_yscale() == "log"
    assert [y for _, y in points(ax, "o")] == pytest.approx([0.5, 0.8, 2.0])  # exp of the logs
    lo, hi = ax.get_ylim()
    assert lo < 0.4 and hi > 2.1 and lo < 1 < hi
    assert any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.get_lines())


def test_claim_without_an_interval_says_so(drawn):
    claim = points_claim(interval=None, n=2, values={"x": 1.0, "y": 2.0}, estimate=1.5,
                         reason="no interval from fewer than 3 targets")
    assert plots.plot_claim(claim, Path("unused.png"))
    ax = drawn[0].axes[0]
    assert "interval n/a" in [t.get_text() for t in ax.texts]
    assert not [c for c in ax.collections if c.get_segments()]  # no error bar
    caption = plots.claim_caption(claim)
    assert "no interval (no interval from fewer than 3 targets)" in caption and "n = 2 targets" in caption


def test_claim_figures_writes_claim_id_png_and_skips_claims_without_data(tmp_path):
    claims = [points_claim(), points_claim(id="C4", title="weight decay", values={}, estimate=None, interval=None,
                                           n=0, verdict=NOT_MEASURED, reason="one weight decay in this config")]
    files = plots.claim_figures(claims, tmp_path)
    assert files == {"C1": "claim-C1.png"}
    assert (tmp_path / "claim-C1.png").read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "claim-C4.png").exists()


def test_claim_caption_names_the_dots_estimate_interval_p_and_verdict():
    caption = plots.claim_caption(points_claim())
    assert caption.startswith("One dot per target: gain (points); fused (all) vs pretrained.")
    assert "Black line: 0, no difference." in caption
    assert "estimate +1.67 and its 95% interval [-0.90, +4.20]" in caption
    assert "p (Holm over the claims) = 0.750" in caption and "Verdict: inconclusive (n = 3 targets)" in caption


# ---- the page ----------------------------------------------------------------------------------------------------

class FigureCheck(HTMLParser):
    """Each <img> with the <figure> it sits in and that figure's <figcaption> text; each <table> with whether it
    sits in a `table-scroll` box."""

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, dict]] = []
        self.images: list[dict] = []  # {"in_figure": bool, "caption": str}
        self.tables: list[bool] = []
        self.caption: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            figure = next((a for t, a in reversed(self.stack) if t == "figure"), None)
            self.images.append({"figure": figure, "caption": ""})
            if figure is not None:
                figure.setdefault("_images", []).append(self.images[-1])
            return
        if tag == "table":
            self.tables.append(any(t == "div" and "table-scroll" in (a.get("class") or "").split()
                                   for t, a in self.stack))
        if tag == "figcaption":
            self.caption = []
        self.stack.append((tag, attrs))

    def handle_endtag(self, tag):
        while self.stack:
            t, attrs = self.stack.pop()
            if t == "figcaption" and self.caption is not None:
                figure = next((a for t2, a in reversed(self.stack) if t2 == "figure"), {})
                for img in figure.get("_images", []):
                    img["caption"] = "".join(self.caption).strip()
                self.caption = None
            if t == tag:
                break

    def handle_data(self, data):
        if self.caption is not None:
            self.caption.append(data)


def check_page(page: str) -> FigureCheck:
    checker = FigureCheck()
    checker.feed(page)
    return checker


def test_every_image_on_the_page_has_a_figure_caption(tmp_path):
    paths = build_report(write_nine_target_run(tmp_path))
    page = check_page(paths.html.read_text())
    # C1, C2, C3, C5 (C4: one weight decay, not measured) and the 4 standard figures of a one-decay run
    assert len(page.images) == len(paths.figures) == 8
    for img in page.images:
        assert img["figure"] is not None and img["caption"], img
    md = paths.markdown.read_text()
    for name in ("gains_per_target", "fused_vs_intertrained", "spread", "seed_std"):
        assert f"]({name}.png)\n\n**" in md  # the caption follows the image in report.md


def test_an_image_outside_a_figure_or_without_caption_is_caught():
    # the check itself: a bare image, and a figure whose caption is empty, both fail it
    page = check_page('<img src="a.png"><figure><img src="b.png"><figcaption> </figcaption></figure>'
                      '<figure><img src="c.png"><figcaption>C: what the dots are</figcaption></figure>')
    assert [(img["figure"] is not None, img["caption"]) for img in page.images] == [
        (False, ""), (True, ""), (True, "C: what the dots are")]


def test_every_table_on_the_page_sits_in_a_sideways_scrolling_box(tmp_path):
    paths = build_report(write_nine_target_run(tmp_path))
    page = check_page(paths.html.read_text())
    assert page.tables and all(page.tables)
    assert ".table-scroll{max-width:100%;overflow-x:auto" in render.CSS


def test_figure_html_puts_the_title_and_caption_under_the_image(tmp_path):
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG fake")
    out = render.figure_html(render.Figure("Seed <sensitivity>", png, "Dots: targets & seeds."))
    assert out.startswith('<figure><img alt="Seed &lt;sensitivity&gt;" src="data:image/png;base64,')
    assert out.endswith("<figcaption><strong>Seed &lt;sensitivity&gt;.</strong> Dots: targets &amp; seeds."
                        "</figcaption></figure>")
    assert render.figure_markdown(render.Figure("T", png, "cap")) == "![T](f.png)\n\n**T.** _cap_\n"
