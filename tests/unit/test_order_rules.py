import pathlib

import pytest

from order_svc import domain
from order_svc.menu import DEFAULT_MENU, load_menu
from servicekit.errors import InvalidArgument


def test_price_is_unit_price_times_qty() -> None:
    assert domain.price_order(DEFAULT_MENU, "cake", 2, "c1") == 50000


@pytest.mark.parametrize(
    ("item", "qty", "customer"),
    [
        ("pizza", 1, "c1"),
        ("cake", 0, "c1"),
        ("cake", -3, "c1"),
        ("cake", 101, "c1"),
        ("cake", 1, ""),
        ("cake", 1, "   "),
        ("cake", 1, "x" * 65),
    ],
)
def test_bad_orders_are_invalid_arguments(item: str, qty: int, customer: str) -> None:
    with pytest.raises(InvalidArgument):
        domain.price_order(DEFAULT_MENU, item, qty, customer)


def test_statuses_only_move_forward() -> None:
    can_move = domain.ORDERS.can_move
    assert can_move(domain.PENDING, domain.PAID)
    assert can_move(domain.PAID, domain.DELIVERED)  # acceptance seen late
    assert not can_move(domain.CANCELED, domain.CONFIRMED)
    assert not can_move(domain.DELIVERED, domain.CANCELED)
    assert not can_move(domain.FAILED, domain.PAID)


def test_a_cancel_is_a_request_the_bakery_answers() -> None:
    assert domain.ORDERS.sources(domain.CANCELING) == [domain.PAID, domain.CONFIRMED]
    # Only the bakery's confirmation cancels; its delivery or rejection still ends the order.
    assert domain.ORDERS.sources(domain.CANCELED) == [domain.CANCELING]
    assert domain.ORDERS.can_move(domain.CANCELING, domain.DELIVERED)
    assert domain.ORDERS.can_move(domain.CANCELING, domain.REJECTED)


@pytest.mark.parametrize("request_id", ["x" * 65, "a\x00b", "line\nbreak"])
def test_bad_request_ids_are_invalid_arguments(request_id: str) -> None:
    with pytest.raises(InvalidArgument):
        domain.check_request_id(request_id)


def test_menu_from_configuration(tmp_path: pathlib.Path) -> None:
    assert load_menu({}) == DEFAULT_MENU
    assert load_menu({"MENU": '{"bagel": 2000}'}) == {"bagel": 2000}
    menu_file = tmp_path / "menu.json"
    menu_file.write_text('{"scone": 2500}')
    assert load_menu({"MENU_FILE": str(menu_file)}) == {"scone": 2500}
    with pytest.raises(ValueError):
        load_menu({"MENU": '{"bagel": 1.5}'})
