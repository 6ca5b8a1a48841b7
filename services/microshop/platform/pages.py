"""The one page shape every list endpoint answers, and the query parameters that choose a page."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

MAX_LIMIT = 100
MAX_OFFSET = 100_000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many items at most")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="How many items to skip")]


Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    """`items` from `offset` on, at most `limit` of them, out of `total`."""

    items: list[Item]
    total: int = Field(ge=0, description="How many items there are in all")
    limit: int = Field(ge=1, le=MAX_LIMIT)
    offset: int = Field(ge=0)
