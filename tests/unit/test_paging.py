import base64

import peewee
import pytest

from servicekit.errors import InvalidArgument
from servicekit.paging import MAX_PAGE_SIZE, Listing

db = peewee.SqliteDatabase(":memory:")


class Row(peewee.Model):
    n = peewee.IntegerField()

    class Meta:
        database = db


listing = Listing(Row, Row.n)


@pytest.fixture(scope="module", autouse=True)
def rows() -> None:
    db.create_tables([Row])
    Row.insert_many([{"n": i} for i in range(250)]).execute()


def test_pages_cover_every_row_once() -> None:
    seen: list[int] = []
    token = ""
    while True:
        batch, token = listing.page(40, token)
        seen += [r.n for r in batch]
        if not token:
            break
    assert seen == list(range(250))


def test_only_the_filters_given_apply() -> None:
    assert [r.n for r in listing.page(10, "", n=7)[0]] == [7]
    assert len(listing.page(10, "", n=0)[0]) == 10  # 0 and "" mean "not filtered"


def test_page_size_is_capped_and_defaulted() -> None:
    assert len(listing.page(1000, "")[0]) == MAX_PAGE_SIZE
    assert len(listing.page(0, "")[0]) == 20


@pytest.mark.parametrize("token", ["garbage!", "by01", "eDEw"])
def test_bad_tokens_and_sizes_are_invalid(token: str) -> None:
    with pytest.raises(InvalidArgument):
        listing.page(10, token)
    with pytest.raises(InvalidArgument):
        listing.page(-1, "")


@pytest.mark.parametrize("offset", ["-1", "99999999999999999999", "1e3", " 5"])
def test_tampered_offsets_are_invalid_not_overflows(offset: str) -> None:
    token = base64.urlsafe_b64encode(f"o{offset}".encode()).decode()
    with pytest.raises(InvalidArgument):
        listing.page(10, token)
