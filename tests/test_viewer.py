"""The results viewer that the tiny workflow run writes: its files, its place in the report, and the page itself in a
real headless Chromium (loads from file:// with no error and no network request; method switch, wipe, frames)."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dip.cli import main
from dip.report.aggregate import read_table
from tests.test_workflow import TEST_CONFIG, snakemake, workflow_copy

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny test grid (with 8 frames per fit) run once, and its report; the workflow folder."""
    folder = workflow_copy(tmp_path_factory.mktemp("viewer") / "wf", TEST_CONFIG)
    run = snakemake(folder, "--cores", "2")
    assert run.returncode == 0, run.stderr[-5000:]
    report = snakemake(folder, "--report", "report.zip")
    assert report.returncode == 0, report.stderr[-5000:]
    return folder


@pytest.fixture(scope="module")
def viewer(workflow_run: Path) -> Path:
    return workflow_run / "results" / "viewer"


def page_data(folder: Path) -> dict:
    script = (folder / "viewer-data.js").read_text()
    prefix = "window.DIP_VIEWER_DATA = "
    assert script.startswith(prefix)
    return json.loads(script[len(prefix) :].strip().rstrip(";").replace("<\\/", "</"))


def test_the_workflow_writes_a_small_self_contained_viewer(viewer: Path) -> None:
    files = {path.name for path in viewer.iterdir()} - {".snakemake_timestamp"}
    assert files == {"index.html", "viewer.js", "viewer.css", "viewer-data.js", "assets"}
    assert sum(path.stat().st_size for path in viewer.rglob("*") if path.is_file()) < 1_000_000
    page = (viewer / "index.html").read_text() + (viewer / "viewer.js").read_text()
    for remote in ("http://", "https://", "fetch(", "XMLHttpRequest", 'type="module"', "import("):
        assert remote not in page.replace("http://www.w3.org/2000/svg", "")
    data = page_data(viewer)
    assert [(o["task"], o["level"]) for o in data["observations"]] == [
        ("denoising", "25"),
        ("inpainting", "random50"),
        ("super-resolution", "2"),
    ]
    for observation in data["observations"]:
        kinds = [entry["kind"] for entry in observation["entries"]]
        assert kinds == ["truth", "observation", "baseline", "dip"]
        for entry in observation["entries"]:
            assert (viewer / entry["src"]).is_file()
            assert entry["kind"] == "truth" or entry["kind"] == "observation" or entry["metrics"]["psnr"] > 5
        assert observation["entries"][2]["metrics"]["protocol"] in ("rgb", "y-dip")
    for run in data["runs"]:
        assert run["iterations"] == 30 and len(run["trace"]["iteration"]) == 7
        assert run["frames"]["iterations"] == [0, 1, 2, 3, 6, 10, 17, 29]
        with Image.open(viewer / run["frames"]["src"]) as sprite:
            assert sprite.format == "WEBP" and sprite.size == (3 * 32, 3 * 32)
        assert run["best"]["psnr_gt"] == max(v for v in run["trace"]["psnr_gt"] if v is not None)


def test_the_report_carries_the_viewer(workflow_run: Path) -> None:
    with zipfile.ZipFile(workflow_run / "report.zip") as archive:
        names = archive.namelist()
    (index,) = [name for name in names if name.endswith("/index.html")]
    folder = index.rsplit("/", 1)[0]
    for name in ("viewer.js", "viewer.css", "viewer-data.js", "assets/o0/truth.png", "assets/o0/m1-frames.webp"):
        assert f"{folder}/{name}" in names


def test_viewer_caps_thin_out_frames_and_shrink_images(workflow_run: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(workflow_run)  # the summary's paths are relative to where the workflow ran
    out = tmp_path / "small"
    args = ["viewer", "results/summary.csv", "--out", str(out), "--image-side", "16", "--frame-side", "16"]
    args += ["--max-frames", "3"]
    assert main(args) == 0
    data = page_data(out)
    for run in data["runs"]:
        assert run["frames"]["iterations"] == [0, 6, 29]  # first and last kept, evenly between
        assert (run["frames"]["width"], run["frames"]["height"]) == (16, 16)
    for observation in data["observations"]:
        assert (observation["width"], observation["height"]) == (16, 16)
        with Image.open(out / observation["entries"][0]["src"]) as truth:
            assert truth.size == (16, 16)
    assert main(args) == 0, "an earlier viewer is replaced"


def test_viewer_errors_are_one_line(workflow_run: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    summary = str(workflow_run / "results" / "summary.csv")
    assert main(["viewer", summary, "--out", str(tmp_path / "elsewhere")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("dip viewer: error: none of the summary's run folders exists here (e.g. results/")
    monkeypatch.chdir(workflow_run)
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["viewer", summary, "--out", str(tmp_path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("dip viewer: error: --out") and "notes.txt" in line
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def user_photo_viewer(workflow_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A viewer of the same runs as if they were of a user's own photos: no clean image, no score, no PSNR to the
    ground truth; a failed run among them, and ES-WMV watching the denoising fit (it would have stopped after 20
    iterations and picked the output of iteration 10)."""
    root = tmp_path_factory.mktemp("photo")
    summary = read_table(workflow_run / "results" / "summary.csv")
    for column in ("psnr", "ssim", "psnr_observed", "psnr_y_matlab", "ssim_y_matlab"):
        if column in summary:
            summary[column] = np.nan
    for column in ("observation_dir", "run_dir"):
        copies = {}
        for folder in summary[column].dropna().unique():
            copies[folder] = str(root / "copies" / folder)
            shutil.copytree(workflow_run / folder, copies[folder])
        summary[column] = summary[column].map(copies)
    for clean in (root / "copies").rglob("clean.png"):
        clean.unlink()
    for trace_path in (root / "copies").rglob("trace.csv"):
        trace = pd.read_csv(trace_path)
        trace[["psnr_gt", "psnr_gt_avg"]] = np.nan
        trace.to_csv(trace_path, index=False)
    (record_path,) = (root / "copies").rglob("denoising/*/*/dip-tiny/seed0/record.json")
    record = json.loads(record_path.read_text())
    record["fit"]["stopping"] = "es-wmv"
    record["early_stop"] = {"stop_iteration": 20, "selected_iteration": 10, "psnr_gt": None}
    record["watched"] = {"es-emv": {"stop_iteration": None, "selected_iteration": 30, "psnr_gt": None}}
    record_path.write_text(json.dumps(record))
    for index_path in (root / "copies").rglob("frames.json"):
        index = json.loads(index_path.read_text())
        index["frames"] = [{**frame, "psnr_gt": None} for frame in index["frames"]]
        index_path.write_text(json.dumps(index))
    failed = summary.iloc[[0]].assign(
        method="tv", variant="", status="failed", stage="baseline", error="tv diverged", log="results/logs/x.log"
    )
    pd.concat([summary, failed]).to_csv(root / "summary.csv", index=False)
    assert main(["viewer", str(root / "summary.csv"), "--out", str(root / "viewer")]) == 0
    return root / "viewer"


def test_a_viewer_without_ground_truth_shows_no_metric(user_photo_viewer: Path) -> None:
    data = page_data(user_photo_viewer)
    for observation in data["observations"]:
        assert not observation["has_truth"]
        assert all(entry["metrics"] is None for entry in observation["entries"])
        assert "truth" not in [entry["kind"] for entry in observation["entries"]]
    assert all(run["best"] is None and run["trace"]["psnr_gt"] is None for run in data["runs"])
    (missing,) = [e for o in data["observations"] for e in o["entries"] if "missing" in e]
    assert missing["missing"]["error"] == "tv diverged" and missing["src"] is None
    assert any("tv diverged" in note for note in data["notes"])
    stopping = [run["stopping"] for run in data["runs"]]
    assert stopping[0] == {
        "rule": "es-wmv",
        "continued": True,
        "stop_iteration": 20,
        "selected_iteration": 10,
        "psnr_gt": None,
    }
    assert stopping[1:] == [None, None]
    assert data["runs"][0]["watched"] == [
        {"rule": "es-emv", "stop_iteration": None, "selected_iteration": 30, "psnr_gt": None}
    ]


# --- in a real browser ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium driven by Selenium, with a fresh profile; skipped where Chromium is not installed."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="dip-viewer-chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, folder: Path) -> list[tuple[str, str]]:
    """Load FOLDER/index.html from file://; returns every request made meanwhile, as (document, URL)."""
    driver.get_log("performance")  # drop what the browser did before
    driver.get((folder / "index.html").as_uri())
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append((message["params"].get("documentURL", ""), message["params"]["request"]["url"]))
    return requests


def severe_logs(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def press(driver, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*keys).perform()


def attribute(driver, element_id: str, name: str) -> str:
    return driver.find_element("id", element_id).get_attribute(name)


def style(driver, element_id: str, name: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').style.{name}")


def test_the_page_loads_from_file_with_no_error_and_no_network_request(browser, viewer: Path) -> None:
    requests = open_page(browser, viewer)
    page = [url for document, url in requests if document.startswith("file://")]
    assert page and all(url.startswith(("file://", "data:")) for url in page), page
    assert {url.rsplit("/", 1)[-1] for url in page} >= {"viewer-data.js", "viewer.js", "viewer.css", "truth.png"}
    # nothing at all went to a network, whatever asked (the browser's own pages load from chrome://)
    assert not [url for _, url in requests if url.split(":", 1)[0] in ("http", "https", "ws", "wss", "ftp")]
    assert browser.execute_script("return document.querySelectorAll('#tiles .tile').length") == 4
    assert severe_logs(browser) == []


def test_number_keys_and_hover_switch_the_method(browser, viewer: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, viewer)
    shown = []
    for key in "1234":
        press(browser, key)
        shown.append(attribute(browser, "img-a", "src").rsplit("/", 1)[-1])
    assert shown == ["truth.png", "observation.png", "m0.png", "m1.png"]
    tile = browser.find_elements("css selector", "#tiles .tile")[2]
    ActionChains(browser).move_to_element(tile).perform()
    assert attribute(browser, "img-a", "src").endswith("/m0.png") and "active" in tile.get_attribute("class")
    assert "PSNR" in tile.text and "(rgb)" in tile.text
    assert severe_logs(browser) == []


def test_the_slider_moves_the_wipe(browser, viewer: Path) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    open_page(browser, viewer)
    assert browser.find_element("id", "wipe-layer").get_attribute("hidden") is not None
    Select(browser.find_element("id", "wipe-with")).select_by_visible_text("ground truth")
    assert attribute(browser, "img-b", "src").endswith("/truth.png")
    assert style(browser, "wipe-layer", "clipPath") == "inset(0px 0px 0px 50%)"
    browser.find_element("id", "wipe").send_keys(Keys.HOME)
    assert style(browser, "wipe-layer", "clipPath") == "inset(0px 0px 0px 0%)"
    assert style(browser, "wipe-line", "left") == "0%"
    for _ in range(3):
        browser.find_element("id", "wipe").send_keys(Keys.ARROW_RIGHT)
    assert style(browser, "wipe-line", "left") == "3%"
    assert severe_logs(browser) == []


def test_arrow_keys_step_the_frames_and_move_the_marker(browser, viewer: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    open_page(browser, viewer)
    browser.find_element("id", "tab-process").click()
    assert browser.find_element("id", "process").is_displayed()
    assert "frame 8 of 8 · iteration 29 of 30" in browser.find_element("id", "frame-caption").text
    press(browser, Keys.HOME)
    positions, captions = [], []
    for _ in range(3):
        positions.append(float(attribute(browser, "frame-marker", "x1")))
        captions.append(browser.find_element("id", "frame-caption").text)
        press(browser, Keys.ARROW_RIGHT)
    assert [caption.split(" · ")[1] for caption in captions] == [f"iteration {i} of 30" for i in (0, 1, 2)]
    assert positions == sorted(set(positions))
    assert attribute(browser, "frame-slider", "value") == "3"
    press(browser, Keys.ARROW_LEFT)
    assert attribute(browser, "frame-slider", "value") == "2"
    assert "to the ground truth" in browser.find_element("id", "frame-caption").text
    curves = {path.get_attribute("data-series") for path in browser.find_elements("css selector", "#curve path")}
    assert curves == {"psnr_gt", "psnr_gt_avg", "psnr_obs"}  # denoising averages its outputs (the paper's 0.99)
    assert browser.find_elements("id", "best")
    frame = browser.find_element("id", "frame-stage")
    ActionChains(browser).click_and_hold(frame).move_by_offset(-100, 0).release().perform()  # swipe left: next
    assert attribute(browser, "frame-slider", "value") == "3"
    assert severe_logs(browser) == []


def test_a_screenshot_of_the_page_is_not_blank(browser, viewer: Path) -> None:
    open_page(browser, viewer)
    stage = browser.find_element("id", "stage")
    picture = np.asarray(Image.open(io.BytesIO(stage.screenshot_as_png)).convert("RGB"), dtype=float)
    assert picture.shape[0] > 200 and picture.std() > 10
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50


def test_a_page_without_ground_truth_works_in_the_browser(browser, user_photo_viewer: Path) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, user_photo_viewer)
    names = browser.find_elements("css selector", "#tiles .tile .name span:last-child")
    assert [name.text for name in names] == ["noisy observation", "nlm", "tv", "dip-tiny"]
    tiles = browser.find_elements("css selector", "#tiles .tile")
    assert "no ground truth: no score" in tiles[1].text and "missing: baseline failed: tv diverged" in tiles[2].text
    assert attribute(browser, "img-a", "src").endswith("/m2.png")  # the DIP run first
    press(browser, "3")  # a missing run cannot be shown
    assert attribute(browser, "img-a", "src").endswith("/m2.png")
    press(browser, "2")
    assert attribute(browser, "img-a", "src").endswith("/m0.png")
    browser.find_element("id", "tab-process").click()
    press(browser, Keys.HOME, Keys.ARROW_RIGHT)
    assert "iteration 1 of 30" in browser.find_element("id", "frame-caption").text
    assert "ground truth" not in browser.find_element("id", "frame-caption").text
    facts = browser.find_element("id", "facts").text
    assert "none: only the PSNR to the observation is known" in facts
    assert "would have stopped after 20 iterations; picked iteration 10" in facts
    assert float(attribute(browser, "es-pick", "x1")) < float(attribute(browser, "es-fired", "x1"))
    assert not browser.find_elements("id", "best")  # no ground truth, no best iteration
    assert severe_logs(browser) == []
