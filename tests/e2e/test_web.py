"""The web page, clicked through in Debian's headless Chromium (Selenium with Debian's
chromedriver), served by the real gateway in front of a whole bread, with the development
sign-in. Screenshots of each step are kept in the system's tmp dir (`screenshots/`)."""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Callable, Iterator

import pytest

from harness.system import BreadSystem, running_system

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.chrome.webdriver import WebDriver as Chrome  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMEDRIVER = pathlib.Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
    ),
    pytest.mark.timeout(240),
]

# The saga takes a few event hops; the page polls every second.
SAGA = 20.0

Browser = Callable[[str], Chrome]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BreadSystem]:
    with running_system(tmp_path_factory.mktemp("web"), dev_signin=True) as bread:
        yield bread


@pytest.fixture(scope="module")
def shots(web: BreadSystem) -> pathlib.Path:
    directory = web.tmp / "screenshots"
    directory.mkdir(exist_ok=True)
    return directory


@pytest.fixture
def browser(web: BreadSystem, shots: pathlib.Path) -> Iterator[Browser]:
    """browser(name): a fresh Chromium (its own profile, so its own sessionStorage) on the page."""
    opened: list[tuple[str, Chrome]] = []
    counter = itertools.count()

    def open_browser(name: str) -> Chrome:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            f"--user-data-dir={web.tmp / f'chromium-{name}-{next(counter)}'}",
        ):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        opened.append((name, driver))
        driver.get(web.http + "/")
        return driver

    yield open_browser
    problems = []
    for name, driver in opened:
        try:
            driver.save_screenshot(str(shots / f"last-{name}.png"))
            # No script error and nothing the page's Content-Security-Policy refused. (Answers
            # like 400 or 503 are logged too; those are the tests' business.)
            problems += [
                f"{name}: {entry['message']}"
                for entry in driver.get_log("browser")
                if "Uncaught" in entry["message"] or "Refused to" in entry["message"]
            ]
        finally:
            driver.quit()
    assert not problems, problems


def wait(driver: WebDriver, timeout: float = 10.0) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def sign_in(driver: WebDriver, name: str, role: str) -> None:
    field = driver.find_element(By.ID, "signin-name")
    field.clear()
    field.send_keys(name)
    Select(driver.find_element(By.ID, "signin-role")).select_by_value(role)
    driver.find_element(By.ID, "signin-button").click()
    wait(driver).until(lambda d: d.find_element(By.ID, "who").is_displayed())
    assert driver.find_element(By.ID, "who-name").text == name
    assert driver.find_element(By.ID, "who-role").text == role


def place_order(driver: WebDriver, item: str, qty: str) -> str:
    """Order through the form; the new order's id."""
    Select(driver.find_element(By.ID, "order-item")).select_by_value(item)
    quantity = driver.find_element(By.ID, "order-qty")
    quantity.clear()
    quantity.send_keys(qty)
    driver.find_element(By.ID, "order-button").click()
    result = driver.find_element(By.ID, "order-result")
    wait(driver).until(lambda d: result.get_attribute("data-order-id"))
    order_id = result.get_attribute("data-order-id") or ""
    assert f"Order {order_id[:8]} placed" in result.text
    return order_id


def row(driver: WebDriver, table: str, order_id: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'#{table} tr[data-order-id="{order_id}"]')


def cell_text(driver: WebDriver, table: str, order_id: str, column: str) -> str:
    """The text of one cell, or "" while the row is not (or no longer) there."""
    try:
        rows = driver.find_elements(By.CSS_SELECTOR, f'#{table} tr[data-order-id="{order_id}"]')
        return rows[0].find_element(By.CSS_SELECTOR, f"td.{column}").text if rows else ""
    except StaleElementReferenceException:
        return ""


def wait_status(driver: WebDriver, order_id: str, status: str, timeout: float = SAGA) -> None:
    """Until Mypage shows the order in status, with no reload (the page polls)."""
    wait(driver, timeout).until(
        lambda d: cell_text(d, "mypage-table", order_id, "status") == status,
        f"order {order_id} never showed {status} on Mypage",
    )


def click(driver: WebDriver, table: str, order_id: str, action: str) -> None:
    button = row(driver, table, order_id).find_element(
        By.CSS_SELECTOR, f'button[data-action="{action}"]'
    )
    wait(driver).until(lambda d: button.is_enabled())
    button.click()


def notice(driver: WebDriver, says: str) -> str:
    """The message shown once it contains `says` (a bounded wait)."""
    element = driver.find_element(By.ID, "notice-text")
    wait(driver).until(
        lambda d: says in element.text,
        f"no message saying {says!r}",
    )
    return str(element.text)


def test_a_customer_orders_sees_it_paid_and_cancels_it(
    browser: Browser, shots: pathlib.Path
) -> None:
    page = browser("carol")
    # The menu is public: shown before signing in, with prices.
    wait(page).until(lambda d: d.find_elements(By.CSS_SELECTOR, '#menu-table tr[data-item="cake"]'))
    assert "₩25,000" in page.find_element(By.CSS_SELECTOR, '#menu-table tr[data-item="cake"]').text
    page.save_screenshot(str(shots / "01-signed-out.png"))

    sign_in(page, "carol", "customer")
    assert not page.find_element(By.ID, "bakery").is_displayed()  # not a baker's
    order_id = place_order(page, "croissant", "2")
    wait_status(page, order_id, "PAID")
    assert cell_text(page, "mypage-table", order_id, "price") == "₩7,000"
    wait(page, SAGA).until(
        lambda d: cell_text(d, "mypage-table", order_id, "payment") == "APPROVED"
    )
    page.save_screenshot(str(shots / "02-customer-paid.png"))

    click(page, "mypage-table", order_id, "cancel")
    notice(page, "Cancel asked")
    wait_status(page, order_id, "CANCELED")
    wait(page, SAGA).until(
        lambda d: cell_text(d, "mypage-table", order_id, "happening").startswith(
            "Canceled, refunded"
        )
    )
    assert not row(page, "mypage-table", order_id).find_elements(By.TAG_NAME, "button")
    page.save_screenshot(str(shots / "03-customer-canceled.png"))

    # Signed in for this tab's session: a reload keeps the sign-in.
    page.refresh()
    wait(page).until(lambda d: d.find_element(By.ID, "who").is_displayed())
    wait_status(page, order_id, "CANCELED")


def test_a_baker_accepts_and_delivers_and_the_customer_sees_it(
    browser: Browser, shots: pathlib.Path
) -> None:
    customer = browser("dave")
    sign_in(customer, "dave", "customer")
    order_id = place_order(customer, "baguette", "3")
    wait_status(customer, order_id, "PAID")

    baker = browser("bea")
    sign_in(baker, "bea", "baker")
    assert not baker.find_element(By.ID, "mypage").is_displayed()  # a baker has no orders
    wait(baker, SAGA).until(
        lambda d: cell_text(d, "ticket-table", order_id, "status") == "OPEN",
        "the ticket never opened on the baker's page",
    )
    baker.save_screenshot(str(shots / "04-baker-open-ticket.png"))
    click(baker, "ticket-table", order_id, "accept")
    wait(baker, SAGA).until(
        lambda d: cell_text(d, "ticket-table", order_id, "status") == "ACCEPTED"
    )
    wait_status(customer, order_id, "CONFIRMED")

    click(baker, "ticket-table", order_id, "deliver")
    notice(baker, f"Order {order_id[:8]} delivered")
    wait(baker, SAGA).until(
        lambda d: (
            not d.find_elements(By.CSS_SELECTOR, f'#ticket-table tr[data-order-id="{order_id}"]')
        )
    )
    baker.save_screenshot(str(shots / "05-baker-delivered.png"))

    wait_status(customer, order_id, "DELIVERED")
    assert not row(customer, "mypage-table", order_id).find_elements(By.TAG_NAME, "button")
    customer.save_screenshot(str(shots / "06-customer-delivered.png"))

    # The same browser, signed out and in again as someone else, sees none of dave's orders.
    customer.find_element(By.ID, "sign-out").click()
    wait(customer).until(lambda d: d.find_element(By.ID, "signin").is_displayed())
    sign_in(customer, "erin", "customer")
    wait(customer).until(lambda d: d.find_element(By.ID, "mypage-empty").is_displayed())
    assert not customer.find_elements(By.CSS_SELECTOR, f'tr[data-order-id="{order_id}"]')


@pytest.mark.parametrize("qty", ["0", "1000"])
def test_a_bad_quantity_is_told_in_words(browser: Browser, shots: pathlib.Path, qty: str) -> None:
    page = browser(f"frank-{qty}")
    sign_in(page, "frank", "customer")
    Select(page.find_element(By.ID, "order-item")).select_by_value("donut")
    quantity = page.find_element(By.ID, "order-qty")
    quantity.clear()
    quantity.send_keys(qty)
    page.find_element(By.ID, "order-button").click()
    text = notice(page, "Placing the order")
    assert text.startswith("Placing the order did not work: The quantity must be between 1 and")
    assert "{" not in text and "code" not in text
    assert "error" in (page.find_element(By.ID, "notice").get_attribute("class") or "")
    assert not page.find_element(By.ID, "order-result").get_attribute("data-order-id")
    page.save_screenshot(str(shots / f"07-bad-quantity-{qty}.png"))


def test_pay_down_is_told_in_words_and_the_failed_order_shown(
    web: BreadSystem, browser: Browser, shots: pathlib.Path
) -> None:
    """Last in this module: it stops pay (and starts it again)."""
    page = browser("gina")
    sign_in(page, "gina", "customer")
    assert web.services["pay"].terminate() == 0
    try:
        Select(page.find_element(By.ID, "order-item")).select_by_value("cake")
        page.find_element(By.ID, "order-button").click()
        assert notice(page, "Payment").startswith("Payment is unavailable right now")
        # The order was kept FAILED, and Mypage says so.
        failed = (
            wait(page, SAGA)
            .until(lambda d: d.find_elements(By.CSS_SELECTOR, "#mypage-table tbody tr"))[0]
            .get_attribute("data-order-id")
        )
        assert failed
        wait_status(page, failed, "FAILED")
        assert cell_text(page, "mypage-table", failed, "happening") == (
            "Not placed: payment was unavailable, nothing was charged"
        )
        page.save_screenshot(str(shots / "08-pay-down.png"))
    finally:
        web.restart("pay")
