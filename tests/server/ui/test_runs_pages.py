"""The experiments, runs and run pages in a real browser: each loads without a JavaScript
error or a failed request, the runs table filters, sorts, pages and remembers its columns,
and bad input is shown in place."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

import loopml
from loopml.workspace import Workspace

pytestmark = pytest.mark.browser


@pytest.fixture
def runs(behind: Workspace) -> list[str]:
    """An experiment of 60 runs (more than one page), with params, metrics and files."""
    made = []
    for i in range(60):
        with loopml.start_run(
            "flights",
            name=f"trial-{i:02d}",
            params={"lr": i / 100, "depth": i % 3},
            workspace=behind,
        ) as run:
            run.log_metric("auc", 0.6 + i / 1000)
            run.log_metric("val loss", 1 - i / 100)
            if i == 59:
                run.log_artifact(b"threshold,0.5\n", "report/thresholds.csv")
        made.append(run.id)
    return made


def test_every_page_loads_cleanly(watched, url: str, runs: list[str]) -> None:
    page = watched.page
    page.goto(f"{url}/ui/")
    page.get_by_role("link", name="flights").click()
    page.wait_for_url("**/ui/experiments/flights")
    assert page.locator("table.runs-table tbody tr").count() == 50
    watched.shoot("runs table")
    page.get_by_role("link", name="trial-59").click()
    page.wait_for_url(f"**/ui/runs/{runs[-1]}")
    assert page.get_by_role("heading", name="Params").is_visible()
    assert "0.659" in page.get_by_role("region", name="Metrics").inner_text()
    watched.shoot("run")
    with page.expect_download() as download:
        page.get_by_role("link", name="report/thresholds.csv").click()
    assert download.value.suggested_filename == "thresholds.csv"
    page.goto(f"{url}/ui/")
    watched.shoot("experiments")


def test_the_runs_table_filters_sorts_and_pages(watched, url: str, runs: list[str]) -> None:
    page = watched.page
    page.goto(f"{url}/ui/experiments/flights")
    page.get_by_label("Filter").fill("metrics.auc > 0.65 and params.depth = 0")
    page.get_by_role("button", name="Apply").click()
    names = page.locator("table.runs-table tbody tr td:nth-child(2)")
    expect(names).to_have_text([f"trial-{i:02d}" for i in (57, 54, 51)])  # newest first
    assert "where=" in page.url

    page.get_by_label("Filter").fill("")
    page.get_by_role("button", name="Apply").click()
    expect(names).to_have_count(50)
    page.locator("th", has_text="auc").get_by_role("link").click()  # descending first
    expect(names.first).to_have_text("trial-59")
    page.get_by_role("link", name="Next page").click()
    expect(names).to_have_text([f"trial-{i:02d}" for i in range(9, -1, -1)])
    assert "sort=-metrics.auc" in page.url and "cursor=" in page.url
    page.reload()  # the address is the page: the same rows come back
    expect(names).to_have_count(10)


def test_a_malformed_filter_is_shown_in_place(watched, url: str, runs: list[str]) -> None:
    page = watched.page
    watched.expected_status.add(400)
    page.goto(f"{url}/ui/experiments/flights")
    page.get_by_label("Filter").fill("metrics.auc >> 1")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("expected a value")
    assert page.get_by_label("Filter").input_value() == "metrics.auc >> 1"  # kept to fix
    watched.shoot("runs filter error")


def test_hidden_columns_are_remembered(watched, url: str, runs: list[str]) -> None:
    page = watched.page
    page.goto(f"{url}/ui/experiments/flights")
    page.get_by_text("Columns", exact=True).click()
    page.get_by_label("metrics.`val loss`").uncheck()
    expect(page.locator("th[data-column='metrics.`val loss`']")).to_be_hidden()
    page.reload()
    expect(page.locator("th[data-column='metrics.`val loss`']")).to_be_hidden()
    expect(page.locator("th[data-column='metrics.auc']")).to_be_visible()


def test_unknown_ids_are_pages_that_say_so(watched, url: str, behind) -> None:
    watched.expected_status.add(404)
    page = watched.page
    answer = page.goto(f"{url}/ui/runs/0123456789abcdef")
    assert answer.status == 404
    assert "No run" in page.get_by_role("alert").inner_text()
    assert "Traceback" not in page.content()
    assert page.goto(f"{url}/ui/experiments/nowhere").status == 404
    watched.shoot("not found")


def test_pages_need_a_viewer_once_tokens_exist(url: str, behind: Workspace) -> None:
    from loopml.store import tokens as tokens_repo

    secret = tokens_repo.create_token(behind.metadata, "ana", "viewer").token
    refused = httpx.get(f"{url}/ui/")
    assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"]
    assert "<html" in refused.text  # a page, for a person
    assert httpx.get(f"{url}/ui/", auth=("ana", secret)).status_code == 200


def test_a_metric_of_100000_points_is_charted_whole(watched, url: str, behind) -> None:
    with loopml.start_run("long", name="long", workspace=behind) as run:
        for step in range(100_000):
            run.log_metric("loss", 99.0 if step == 77_777 else 1 / (1 + step), step=step)
        run.log_metric("lr", 0.1)
    series = httpx.get(f"{url}/ui/runs/{run.id}/metrics.json", params={"key": "loss"}).json()
    assert len(series["loss"]["value"]) == 100_000 and max(series["loss"]["value"]) == 99.0
    page = watched.page
    page.goto(f"{url}/ui/runs/{run.id}")
    note = page.locator(".charts .chart-note")
    expect(note).to_contain_text("100,001 points, every one drawn")  # loss and lr
    expect(page.locator(".charts canvas")).to_have_count(1)
    page.get_by_label("log scale").check()
    page.locator("select[name=x]").select_option("time")
    page.locator("input[name=smoothing]").fill("0.9")
    expect(page.locator(".charts .u-legend")).to_contain_text("loss (raw)")
    page.get_by_label("lr", exact=True).uncheck()
    expect(note).to_contain_text("100,000 points")
    watched.shoot("run charts")


def test_runs_group_by_a_param_with_mean_and_spread(watched, url: str, runs) -> None:
    page = watched.page
    page.goto(f"{url}/ui/experiments/flights")
    page.get_by_label("Group by").select_option("depth")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("table.groups-table tbody tr")
    expect(rows).to_have_count(3)
    # depth 0 holds trials 0, 3, ..., 57: auc 0.6 + i / 1000, mean 0.6285
    expect(rows.first).to_contain_text("0.6285 ± 0.018")
    expect(rows.first.locator("td").first).to_have_text("20")
    watched.shoot("runs grouped")


def test_two_runs_compare_side_by_side(watched, url: str, runs) -> None:
    page = watched.page
    page.goto(f"{url}/ui/experiments/flights")
    page.get_by_label("compare trial-59").check()
    page.get_by_label("compare trial-56").check()
    page.get_by_role("button", name="Compare the ticked runs").click()
    page.wait_for_url("**/ui/compare?*")
    table = page.locator("table.compare-table")
    expect(table.locator("thead th")).to_have_text(["", "trial-59", "trial-56"])
    depth = table.locator("tr", has=page.get_by_role("rowheader", name="depth", exact=True))
    lr = table.locator("tr", has=page.get_by_role("rowheader", name="lr", exact=True))
    expect(depth).to_have_class("same")  # both depth 2
    expect(lr).to_have_class("differs")
    page.get_by_label("Hide rows where every run agrees").check()
    expect(depth).to_be_hidden()
    expect(lr).to_be_visible()
    expect(page.locator(".charts .chart-note")).to_contain_text("2 points, every one drawn")
    watched.shoot("compare")
    page.locator("select[name=metric]").select_option("val loss")
    expect(page.locator(".charts .u-legend")).to_contain_text("trial-56")


def test_compare_needs_two_runs(watched, url: str, runs) -> None:
    watched.expected_status.add(400)
    answer = watched.page.goto(f"{url}/ui/compare?run={runs[0]}")
    assert answer.status == 400
    expect(watched.page.get_by_role("alert")).to_contain_text("Choose 2 to 12 runs")
