#!/usr/bin/env python3
"""Drives the playground (GET /) in headless Chromium with Selenium and checks what it renders.

Run by PlaygroundBrowserTests against a server whose upstream is a local fake that answers, in order:
a tool call, a text answer in several chunks, a long answer that the page cancels, then an answer whose
connection the page drops and picks up again. Prints one JSON
object with what it saw; exits 1 with a message when something is wrong.
"""
import argparse
import json
import sys
import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chromium import headless_chromium


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument("--screenshot")
    parser.add_argument("--api-key", help="the server wants this key: the page must ask for it")
    args = parser.parse_args()

    driver = headless_chromium()
    try:
        driver.get(args.url)
        wait = WebDriverWait(driver, 20)
        status = driver.find_element(By.ID, "status")

        # 0. With keys configured, the page asks for one, says when a key is refused, and keeps it in memory only.
        key_prompt = None
        driver.find_element(By.ID, "query").send_keys(args.query)
        if args.api_key:
            key_box = driver.find_element(By.ID, "key-box")
            if key_box.is_displayed():
                fail("the key box shows before the server asked for a key")
            driver.find_element(By.ID, "send").click()
            wait.until(lambda d: key_box.is_displayed())
            asked = status.text
            key = driver.find_element(By.ID, "key")
            key.send_keys("sb_not-the-right-key-0000000000000000")
            driver.find_element(By.ID, "send").click()
            wait.until(lambda d: status.text != asked and status.text != "analysing…")
            refused = status.text
            key.clear()
            key.send_keys(args.api_key)
            key_prompt = {"asked": asked, "refused": refused, "focused": driver.switch_to.active_element == key}
        # 1. A routed chat with a tool round.
        driver.find_element(By.ID, "send").click()
        wait.until(lambda d: status.text in ("done", "cancelled") or "bad" in status.get_attribute("class"))
        if status.text != "done":
            fail(f"the first chat ended with status {status.text!r}")
        marks = [{"text": m.text, "rule": m.get_attribute("data-rule"), "title": m.get_attribute("title")}
                 for m in driver.find_elements(By.CSS_SELECTOR, "#query-view mark")]
        rows = []
        for row in driver.find_elements(By.CSS_SELECTOR, "#timeline tr"):
            cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
            rows.append({"id": cells[0], "type": cells[1], "sinceStart": float(cells[2]), "sincePrevious": float(cells[3]),
                         "detail": cells[4]})
        analysis = {dt.text: dd.text for dt, dd in zip(driver.find_elements(By.CSS_SELECTOR, "#analysis dt"),
                                                         driver.find_elements(By.CSS_SELECTOR, "#analysis dd"))}
        totals = {dt.text: dd.text for dt, dd in zip(driver.find_elements(By.CSS_SELECTOR, "#totals dt"),
                                                       driver.find_elements(By.CSS_SELECTOR, "#totals dd"))}
        answer = driver.find_element(By.ID, "answer").text
        if args.screenshot:
            driver.save_screenshot(args.screenshot)
        # The finished chat is rated: thumbs down, it should have been complex.
        feedback_box = driver.find_element(By.ID, "feedback")
        feedback_shown = feedback_box.is_displayed()
        if feedback_shown:
            for option in driver.find_elements(By.CSS_SELECTOR, "#feedback-level option"):
                if option.text == "complex":
                    option.click()
            driver.find_element(By.ID, "feedback-down").click()
            wait.until(lambda d: d.find_element(By.ID, "feedback-status").text)
        feedback = {"shown": feedback_shown, "status": driver.find_element(By.ID, "feedback-status").text}

        # 2. A chat cancelled while its text streams.
        query = driver.find_element(By.ID, "query")
        query.clear()
        query.send_keys(args.query + " again")
        driver.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline tr[data-type=text_chunk]"))
        cancel_clicked = time.monotonic()
        driver.find_element(By.ID, "cancel").click()
        wait.until(lambda d: status.text == "cancelled")
        cancel_ms = (time.monotonic() - cancel_clicked) * 1000
        cancelled_rows = [r.get_attribute("data-type") for r in driver.find_elements(By.CSS_SELECTOR, "#timeline tr")]
        cancelled_answer = driver.find_element(By.ID, "answer").text

        # 3. A dropped connection, picked up again.
        query.clear()
        query.send_keys(args.query + " once more")
        driver.find_element(By.ID, "send").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#timeline tr[data-type=text_chunk]"))
        driver.find_element(By.ID, "drop").click()
        wait.until(lambda d: status.text in ("done", "cancelled") or "bad" in status.get_attribute("class"))
        resumed_rows = [{"id": row.find_elements(By.TAG_NAME, "td")[0].text, "type": row.get_attribute("data-type")}
                        for row in driver.find_elements(By.CSS_SELECTOR, "#timeline tr")]
        resumed_answer = driver.find_element(By.ID, "answer").text
        resumed_status = status.text
        stored = driver.execute_script(
            "return { local: localStorage.length, session: sessionStorage.length, cookie: document.cookie, url: location.href }")
        print(json.dumps({"ok": True, "feedback": feedback, "keyPrompt": key_prompt, "stored": stored, "marks": marks, "rows": rows, "analysis": analysis, "totals": totals, "answer": answer,
                          "cancelledRows": cancelled_rows, "cancelledAnswer": cancelled_answer, "cancelMs": cancel_ms,
                          "resumedRows": resumed_rows, "resumedAnswer": resumed_answer, "resumedStatus": resumed_status,
                          "sendEnabled": driver.find_element(By.ID, "send").is_enabled()}))
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
