"""Public routes of the users service: sign-up, token, and the caller's own profile."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request, status
from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from starlette.concurrency import run_in_threadpool

from microshop.platform.auth import Principal, TokenIssuer, hash_password
from microshop.platform.deps import CurrentPrincipal, Store
from microshop.platform.errors import TooManyRequests, Unauthorized
from microshop.platform.text import NOT_BLANK_PATTERN, STORABLE_PATTERN
from microshop.users.domain import (
    BAD_CREDENTIALS,
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    credentials_match,
    needs_rehash,
)
from microshop.users.models import User
from microshop.users.passwords import PasswordHashing, password_problem
from microshop.users.store import UserStore
from microshop.users.throttle import LoginThrottle

users_router = APIRouter(prefix="/api/v1/users", tags=["users"])
auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


# The patterns tell a client (and a fuzzer) what the validators below refuse: U+0000 anywhere
# (platform/text.py), a name or password of whitespace only. A common password is refused too
# (NIST SP 800-63B): the list is the rule there, too long and case-blind for a schema.
class UserCreate(BaseModel):
    email: Annotated[EmailStr, Field(max_length=EMAIL_MAX_LENGTH)]
    password: Annotated[
        str,
        Field(
            min_length=PASSWORD_MIN_LENGTH,
            max_length=PASSWORD_MAX_LENGTH,
            description="Not only whitespace, not one of the most common passwords",
            json_schema_extra={"pattern": NOT_BLANK_PATTERN},
        ),
    ]
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
        Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN}),
    ]

    # An unknown field is refused, not dropped: a typo is the caller's to hear of.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"email": "ada@example.com", "password": "plum violin orbit 42", "name": "Ada"}
            ]
        },
    )

    @field_validator("password")
    @classmethod
    def _not_a_guessable_password(cls, password: str, info: ValidationInfo) -> str:
        problem = password_problem(password, str(info.data.get("email", "")))
        if problem is not None:
            raise ValueError(problem)
        return password


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    created_at: datetime


class LoginForm(BaseModel):
    """The OAuth2 password flow's form (RFC 6749 §4.3.2): the email as `username`."""

    username: Annotated[
        str,
        Field(
            min_length=1,
            max_length=EMAIL_MAX_LENGTH,
            description="The email registered with",
            json_schema_extra={"pattern": STORABLE_PATTERN},
        ),
    ]
    password: Annotated[
        str,
        Field(
            min_length=1,
            max_length=PASSWORD_MAX_LENGTH,
            json_schema_extra={"pattern": STORABLE_PATTERN},
        ),
    ]
    grant_type: Literal["password"] = "password"
    scope: Annotated[
        str, Field(max_length=1000, json_schema_extra={"pattern": STORABLE_PATTERN})
    ] = ""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"username": "ada@example.com", "password": "plum violin orbit 42"}]
        },
    )


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


@users_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    summary="Register a user",
    responses={
        409: {"description": "The email is taken"},
        503: {"description": "Too many sign-ups and logins at once; see Retry-After"},
    },
)
async def create_user(body: UserCreate, request: Request, store: Store[UserStore]) -> User:
    hashing: PasswordHashing = request.app.state.password_hashing
    password_hash = await hashing.run(lambda: hash_password(body.password))
    return await run_in_threadpool(store.add, str(body.email), body.name, password_hash)


@users_router.get("/me", response_model=UserOut, summary="The caller")
def read_me(principal: CurrentPrincipal, store: Store[UserStore]) -> User:
    return store.get(principal.user_id)


def client_address(request: Request) -> str:
    """The caller's address: the gateway's X-Forwarded-For (it sets exactly one, the address it
    saw, dropping any the caller sent), or the peer. Only the gateway reaches the services (the
    NetworkPolicy), and the address only keys the login throttle, never an identity."""
    forwarded = request.headers.get("x-forwarded-for", "")
    address = forwarded.rsplit(",", 1)[-1].strip()
    if address:
        return address
    return request.client.host if request.client else "unknown"


@auth_router.post(
    "/token",
    response_model=TokenOut,
    summary="Exchange email and password for an access token (OAuth2 password flow)",
    responses={
        401: {"description": "Incorrect email or password"},
        429: {"description": "Too many failed logins for this account or client; see Retry-After"},
        503: {"description": "Too many logins at once; see Retry-After"},
    },
)
async def create_token(
    request: Request,
    form: Annotated[LoginForm, Form()],
    store: Store[UserStore],
) -> TokenOut:
    throttle: LoginThrottle = request.app.state.login_throttle(store.sessions)
    client = client_address(request)
    wait = await run_in_threadpool(throttle.retry_after, form.username, client)
    if wait is not None:
        # The password is not even checked: a blocked key tells a guesser nothing.
        raise TooManyRequests(
            f"too many failed logins; try again in {wait} s", retry_after_seconds=wait
        )
    hashing: PasswordHashing = request.app.state.password_hashing
    user = await run_in_threadpool(store.find_by_email, form.username)
    stored_hash = user.password_hash if user else None
    if not await hashing.run(lambda: credentials_match(stored_hash, form.password)):
        await run_in_threadpool(throttle.failed, form.username, client)
        raise Unauthorized(BAD_CREDENTIALS)
    assert user is not None
    await run_in_threadpool(throttle.succeeded, form.username)
    if needs_rehash(user.password_hash):
        new_hash = await hashing.run(lambda: hash_password(form.password))
        await run_in_threadpool(store.replace_password_hash, user.id, new_hash)
    issuer: TokenIssuer = request.app.state.token_issuer
    token = issuer.issue(Principal(user_id=user.id, email=user.email))
    return TokenOut(access_token=token, expires_in=issuer.ttl_seconds)
