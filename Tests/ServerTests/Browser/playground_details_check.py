#!/usr/bin/env python3
"""Drives the playground in headless Chromium with Selenium, with its two opt-ins turned on (the tools' inputs and
results, the model's thinking), and prints what it rendered as one JSON object; exits 1 with a message when the
chat does not finish.

Run by PlaygroundTests against a server whose upstream is a local fake that thinks, calls get_departments, then
thinks again and answers.
"""
import argparse
import json
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from chromium import headless_chromium


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--query", required=True)
    args = parser.parse_args()
    driver = headless_chromium()
    try:
        driver.get(args.url)
        wait = WebDriverWait(driver, 20)
        driver.find_element(By.ID, "opt-details").click()
        driver.find_element(By.ID, "opt-thinking").click()
        driver.find_element(By.ID, "query").send_keys(args.query)
        driver.find_element(By.ID, "send").click()
        status = driver.find_element(By.ID, "status")
        wait.until(lambda d: status.text in ("done", "cancelled") or "bad" in (status.get_attribute("class") or ""))
        if status.text != "done":
            print(json.dumps({"ok": False, "error": f"the chat ended with: {status.text}"}))
            sys.exit(1)
        seen = driver.execute_script("""
            const thinking = document.getElementById("thinking");
            const style = getComputedStyle(thinking);
            const answerColor = getComputedStyle(document.getElementById("answer")).color;
            return {
              thinking: thinking.textContent,
              thinkingStyle: {fontStyle: style.fontStyle, opacity: style.opacity, color: style.color, answerColor},
              thinkingBeforeAnswer: !!(thinking.compareDocumentPosition(document.getElementById("answer"))
                                       & Node.DOCUMENT_POSITION_FOLLOWING),
              answer: document.getElementById("answer").textContent,
              details: [...document.querySelectorAll("#timeline details.tool-details")].map(d => ({
                summary: d.querySelector("summary").textContent, open: d.open,
                text: d.querySelector("pre").textContent,
                visible: d.querySelector("pre").checkVisibility({contentVisibilityAuto: true}),
                row: d.closest("tr").dataset.type})),
              rows: [...document.querySelectorAll("#timeline tr")].map(r => r.dataset.type),
            };
        """)
        # A click opens a collapsed card.
        cards = driver.find_elements(By.CSS_SELECTOR, "#timeline details.tool-details summary")
        if cards:
            cards[-1].click()
            seen["openedVisible"] = driver.execute_script(
                "const d=[...document.querySelectorAll('#timeline details.tool-details')].pop();"
                "return d.open && d.querySelector('pre').checkVisibility();")
        seen["ok"] = True
        print(json.dumps(seen))
    finally:
        driver.quit()


main()
