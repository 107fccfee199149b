"""The page in a real browser: headless Chromium (the OS package, not a downloaded build) driven by Selenium
opens `/` on a real server, uploads a photo, and shows a box with a label over it, probabilities on hover."""
import re
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facemask.core import CLASSES
from facemask.core.images import list_class_images, load_rgb
from facemask.use.detect import make_detector
from facemask.use.server.app import create_app
from tests.champion_support import plain_image
from tests.conftest import REAL_DATASET
from tests.serve_support import served_model, started_pool, uvicorn_on_localhost

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")
LABEL = re.compile(r"^(mask|no mask), (young|old) \d+%$")


@pytest.fixture(scope="module")
def app():
    """The tiny model behind the real default detector; the whole photo is classified when it finds no face."""
    with started_pool("yunet", workers=1, queue=4, whole_image=True, max_pixels=40_000_000) as pool:
        yield create_app(pool, served_model(), "yunet")


@pytest.fixture(scope="module")
def face_photo() -> Path:
    """A dataset photo in which the detector finds a face."""
    if not REAL_DATASET.is_dir():
        pytest.skip(f"real dataset not present at {REAL_DATASET} (only on machines with ../shared)")
    detector = make_detector("yunet")
    unmasked = [path for path, _ in list_class_images(REAL_DATASET / "images", CLASSES[2:])]
    found = next((path for path in unmasked[:50] if detector.detect(load_rgb(path))), None)
    assert found is not None, "the detector found no face in 50 unmasked dataset photos"
    return found


def test_a_photo_without_a_face_says_so(app, tmp_path):
    with TestClient(app) as client:
        image = plain_image(tmp_path / "plain.png")
        answer = client.post("/predict?whole_image=0", content=image.read_bytes(), headers={"Content-Type": "image/png"})
    assert answer.status_code == 200 and answer.json()["faces"] == [{"file": "upload", "status": "no_face"}]


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("no chromium and chromedriver here: `apt-get install chromium chromium-driver` (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_draws_a_box_and_label_over_an_uploaded_photo(app, browser, face_photo):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with uvicorn_on_localhost(app) as url:
        browser.get(url)
        wait = WebDriverWait(browser, 60)
        wait.until(lambda page: "tiny-test-model" in page.find_element(By.ID, "model").text)
        browser.find_element(By.ID, "files").send_keys(str(face_photo))
        caption = wait.until(lambda page: page.find_element(By.CSS_SELECTOR, ".result .caption").text
                             if "face" in page.find_element(By.CSS_SELECTOR, ".result .caption").text else None)
        [box] = browser.find_elements(By.CSS_SELECTOR, ".result .box")
        label = box.find_element(By.CLASS_NAME, "label").text
        probabilities = box.find_element(By.CLASS_NAME, "probabilities")
        hidden_before_hover = not probabilities.is_displayed()
        ActionChains(browser).move_to_element(box).perform()
        wait.until(lambda page: probabilities.is_displayed())
        shown = probabilities.text
    assert caption == f"{face_photo.name}: 1 face"  # found by the detector, not the whole photo
    assert LABEL.match(label), label
    assert box.size["width"] > 10 and box.size["height"] > 10
    assert hidden_before_hover and all(name.replace("_", " ") in shown for name in CLASSES)
