"""The weekly summary page and the close report page, read the way people read them: generated from a real
warehouse (the week captured by closeout_sync_harvest from the Harvest sandbox, a client named with 120
characters), served over HTTP from the artifact folder, and loaded in Debian's headless Chromium through
chromedriver (W3C WebDriver) at a laptop's (1366x768) and a phone's (390x844) width.

Each page at each width: no console error; the chart drawn (SVG bars with a non-zero bounding box); nothing wider
than the window (``scrollWidth <= innerWidth``: wide tables scroll inside their own box); the long client name
wraps onto several lines; every link resolves (an anchor names an element, a file answers 200)."""

from __future__ import annotations

import pytest
import summary_support
from browser_support import LAPTOP, PHONE, ChromeDriver, FolderServer, available, link_answers, page_facts
from summary_support import LONG_NAME

agency, finance_mail = summary_support.agency, summary_support.finance_mail

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chromedriver():
    reason = available()
    if reason:
        pytest.skip(reason)
    driver = ChromeDriver()
    yield driver
    driver.stop()


@pytest.fixture
def pages(agency):
    """Both pages written to the artifact store: the week's summary and the close report of the week's month."""
    from closeout.close import report
    from closeout.summary import tasks
    from closeout.warehouse.db import connect

    summary = tasks.summarise(agency.week, "browser-test")
    period = agency.week_start.strftime("%Y-%m")
    with connect() as conn:
        written = report.write_report(report.build_report(conn, period))
    root = agency.artifacts
    server = FolderServer(root)
    urls = {
        "weekly summary": server.url + "/" + str(summary["artifacts"]["html"])[len(str(root)) + 1 :],
        "close report": server.url + "/" + written["html"][len(str(root)) + 1 :],
    }
    yield urls
    server.stop()


def test_both_pages_read_well_on_a_laptop_and_a_phone(chromedriver, pages):
    problems: list[str] = []
    for size in (LAPTOP, PHONE):
        session = chromedriver.session(size)
        try:
            for page, url in pages.items():
                where = f"{page} at {size[0]}x{size[1]}"
                facts = page_facts(session, url, LONG_NAME)
                if facts["console"]:
                    problems.append(f"{where}: console errors {facts['console']}")
                if facts["bars"] == 0 or not any(w > 0 and h > 0 for w, h in facts["charts"]):
                    problems.append(f"{where}: no chart bars drawn ({facts['charts']})")
                if facts["scrollWidth"] > facts["innerWidth"]:
                    problems.append(f"{where}: overflows sideways: {facts['scrollWidth']} > {facts['innerWidth']}")
                if not facts["named"]:
                    problems.append(f"{where}: the 120-character client name is not on the page")
                for named in facts["named"]:
                    if named["lines"] < 2:
                        problems.append(f"{where}: the long client name does not wrap ({named})")
                for anchor, found in facts["anchors"]:
                    if not found:
                        problems.append(f"{where}: anchor {anchor} names no element")
                followed = [link["href"] for link in facts["links"] if not link["raw"].startswith("#")]
                if not followed:
                    problems.append(f"{where}: no data file linked")
                problems.extend(f"{where}: link {href} does not resolve" for href in followed if not link_answers(href))
                if size == PHONE and facts["innerWidth"] > 500:
                    problems.append(f"{where}: not a phone viewport ({facts['innerWidth']} px)")
        finally:
            session.close()
    assert not problems, "\n".join(problems)
