"""Public routes of the users service: sign-up, token, and the caller's own profile."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, EmailStr, Field, StringConstraints

from microshop.platform.auth import Principal, TokenIssuer, hash_password
from microshop.platform.deps import CurrentPrincipal, Store
from microshop.platform.errors import Unauthorized
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
from microshop.users.store import UserStore

users_router = APIRouter(prefix="/api/v1/users", tags=["users"])
auth_router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class UserCreate(BaseModel):
    email: Annotated[EmailStr, Field(max_length=EMAIL_MAX_LENGTH)]
    password: Annotated[str, Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)]
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH)
    ]


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


@users_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    summary="Register a user",
    responses={409: {"description": "The email is taken"}},
)
def create_user(body: UserCreate, store: Store[UserStore]) -> User:
    return store.add(str(body.email), body.name, hash_password(body.password))


@users_router.get("/me", response_model=UserOut, summary="The caller")
def read_me(principal: CurrentPrincipal, store: Store[UserStore]) -> User:
    return store.get(principal.user_id)


@auth_router.post(
    "/token",
    response_model=TokenOut,
    summary="Exchange email and password for an access token (OAuth2 password flow)",
    responses={401: {"description": "Incorrect email or password"}},
)
def create_token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    store: Store[UserStore],
) -> TokenOut:
    user = store.find_by_email(form.username)
    if not credentials_match(user.password_hash if user else None, form.password):
        raise Unauthorized(BAD_CREDENTIALS)
    assert user is not None
    if needs_rehash(user.password_hash):
        store.replace_password_hash(user.id, hash_password(form.password))
    issuer: TokenIssuer = request.app.state.token_issuer
    token = issuer.issue(Principal(user_id=user.id, email=user.email))
    return TokenOut(access_token=token, expires_in=issuer.ttl_seconds)
