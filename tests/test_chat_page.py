"""The web chat in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver, against the real runtime (gateway and actor host apart). Each
state is saved as a screenshot under .artifacts/chat/."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import Api, make_stack_config
from threadhost.runtime import PROJECT_ROOT
from threadhost.stack import Stack

ARTIFACTS = PROJECT_ROOT / ".artifacts" / "chat"
REPLY = "Order 1001 has shipped and is with the carrier; it is due in 2 days."


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver "
            "(./dev test installs them)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # Headless, and nothing beyond this machine: no updates, no sync, no metrics.
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1200,900",
        "--no-first-run",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--metrics-recording-only",
    ):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    chrome.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield chrome
    chrome.quit()


def _shot(browser: webdriver.Chrome, name: str) -> None:
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _wait_text(browser: webdriver.Chrome, text: str, timeout: float = 30) -> None:
    WebDriverWait(browser, timeout).until(ready.text_to_be_present_in_element((By.ID, "log"), text))


def _log(browser: webdriver.Chrome) -> list[str]:
    return [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#log li")]


def _new_thread(browser: webdriver.Chrome, agent: str) -> str:
    WebDriverWait(browser, 30).until(
        lambda b: agent in [o.text for o in Select(b.find_element(By.ID, "agent")).options]
    )
    Select(browser.find_element(By.ID, "agent")).select_by_visible_text(agent)
    browser.find_element(By.CSS_SELECTOR, "#new-thread button").click()
    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return location.hash"))
    return browser.execute_script("return location.hash.slice(1)")


def _say(browser: webdriver.Chrome, text: str) -> None:
    box = browser.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys("\n")  # Enter sends, from the keyboard


def test_a_conversation_streams_waits_for_approval_and_survives_a_reload(
    browser: webdriver.Chrome, split_stack: Stack
) -> None:
    url = split_stack.api.url
    browser.get(f"{url}/")
    assert browser.current_url.endswith("/chat")
    thread = _new_thread(browser, "support")
    _say(browser, "Where is my order 1001?")
    _wait_text(browser, REPLY)
    # Its end, with the run's steps, usage and cost, once the run is read back.
    WebDriverWait(browser, 30).until(
        ready.text_to_be_present_in_element((By.ID, "status"), "Run completed · 5 steps")
    )
    assert "tokens · $" in browser.find_element(By.ID, "status").text
    log = _log(browser)
    assert any("query_order" in entry for entry in log), log  # the tool call shown
    assert sum(REPLY in entry for entry in log) == 1, log  # once, typed or not
    _shot(browser, "1-streamed-reply")

    # A run that waits for a person: the page asks, and the answer resumes it.
    _new_thread(browser, "approvals")
    _say(browser, "Please cancel order 1002.")
    WebDriverWait(browser, 30).until(ready.visibility_of_element_located((By.ID, "waiting")))
    assert "cancel_order" in browser.find_element(By.ID, "waiting").text
    _shot(browser, "2-waiting-for-approval")
    browser.find_element(By.CSS_SELECTOR, "#actions input[value='yes']").click()
    browser.find_element(By.ID, "submit-actions").click()
    _wait_text(browser, "That is settled.")
    WebDriverWait(browser, 30).until(
        ready.text_to_be_present_in_element((By.ID, "status"), "Run completed · ")
    )
    _shot(browser, "3-approved")

    # Reloaded on the first thread: the same conversation, from the thread itself.
    browser.get(f"{url}/chat#{thread}")
    browser.refresh()
    _wait_text(browser, REPLY)
    after = _log(browser)
    assert [e for e in after if "Where is my order 1001?" in e] and sum(
        REPLY in e for e in after
    ) == 1, after
    assert len(after) == len(Api(url).messages(thread))
    _shot(browser, "4-reloaded")


def test_a_dropped_stream_picks_up_where_it_broke_and_shows_nothing_twice(
    browser: webdriver.Chrome, split_stack: Stack
) -> None:
    browser.get(f"{split_stack.api.url}/chat")
    thread = _new_thread(browser, "slow")  # its first model call takes 3 s
    _say(browser, "Where is my order 1001?")
    WebDriverWait(browser, 30).until(
        ready.text_to_be_present_in_element((By.ID, "status"), "Run running")
    )
    browser.execute_script("window.dropConnection()")  # as a network failure would
    _wait_text(browser, "Order 1001 has shipped.")
    WebDriverWait(browser, 30).until(
        ready.text_to_be_present_in_element((By.ID, "status"), "Run completed · ")
    )
    # The rest came from the thread's stream, opened again after the drop from the last
    # event shown (Last-Event-ID).
    assert browser.execute_script("return window.threadStreams") >= 2
    log = _log(browser)
    assert sum("Looking it up." in entry for entry in log) == 1, log
    assert sum("Order 1001 has shipped." in entry for entry in log) == 1, log
    assert len(log) == len(Api(split_stack.api.url).messages(thread)), log
    _shot(browser, "5-resumed-after-a-drop")


def test_two_tabs_on_one_thread_both_see_every_turn_and_a_fork_starts_from_a_message(
    browser: webdriver.Chrome, split_stack: Stack
) -> None:
    url = split_stack.api.url
    browser.get(f"{url}/chat")
    thread = _new_thread(browser, "assistant")
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(f"{url}/chat#{thread}")
    WebDriverWait(browser, 30).until(
        ready.text_to_be_present_in_element((By.ID, "title"), "Thread with assistant")
    )
    second = browser.current_window_handle
    # Sent from the second tab: both show it, without a reload.
    _say(browser, "Hello from the second tab")
    _wait_text(browser, "You said: Hello from the second tab")
    browser.switch_to.window(first)
    _wait_text(browser, "You said: Hello from the second tab")
    assert "Hello from the second tab" in " ".join(_log(browser))
    # And from the first: the second tab shows it too.
    _say(browser, "And one from the first")
    _wait_text(browser, "You said: And one from the first")
    browser.switch_to.window(second)
    _wait_text(browser, "You said: And one from the first")
    _shot(browser, "7-second-tab")
    # A follow-up the thread runs by itself appears in both, without a reload.
    scheduled = Api(url).http.post(
        f"/v1/threads/{thread}/followups", json={"when": "PT1S", "note": "any news?"}
    )
    assert scheduled.status_code == 201, scheduled.text
    _wait_text(browser, "Following up: any news?")
    browser.switch_to.window(first)
    _wait_text(browser, "Following up: any news?")
    assert len(_log(browser)) == len(Api(url).messages(thread)), _log(browser)
    browser.switch_to.window(second)
    browser.close()
    browser.switch_to.window(first)

    # "Try that again from here": a fork before the second message, that message ready
    # to send again, the original thread untouched.
    forks = browser.find_elements(By.CSS_SELECTOR, "#log li.user button.fork")
    forks[1].click()
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return location.hash") != f"#{thread}"
    )
    WebDriverWait(browser, 30).until(
        ready.text_to_be_present_in_element((By.ID, "title"), "(a fork)")
    )
    fork = browser.execute_script("return location.hash.slice(1)")
    assert browser.find_element(By.ID, "message").get_attribute("value") == "And one from the first"
    shown, kept = _log(browser), Api(url).messages(fork)
    assert len(shown) == len(kept) == 2
    assert all(m["content"] in line for m, line in zip(kept, shown, strict=True)), shown
    browser.find_element(By.ID, "message").send_keys(", said otherwise\n")
    _wait_text(browser, "You said: And one from the first, said otherwise")
    assert len(Api(url).messages(fork)) == 4
    assert len(Api(url).messages(thread)) == 6
    _shot(browser, "8-fork")


def test_with_authentication_on_a_pasted_token_opens_the_callers_threads(
    browser: webdriver.Chrome, dapr_bin: Path, tmp_path: Path
) -> None:
    secret = "k" * 32
    config = make_stack_config(
        dapr_bin,
        tmp_path,
        uuid.uuid4().hex[:10],
        env={"THREADHOST_AUTH_MODE": "jwt", "THREADHOST_JWT_SECRET": secret},
    )
    with Stack(config) as stack:
        browser.get(f"{stack.api.url}/chat")
        WebDriverWait(browser, 30).until(
            ready.text_to_be_present_in_element((By.ID, "error"), "bearer token")
        )
        token = jwt.encode({"sub": "ann", "exp": int(time.time()) + 600}, secret, algorithm="HS256")
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.CSS_SELECTOR, "#auth button").click()
        _new_thread(browser, "support")
        _say(browser, "Where is my order 1001?")
        _wait_text(browser, REPLY)
        _shot(browser, "6-with-a-token")
    browser.execute_script("sessionStorage.clear()")
