"""Authentication by bearer token and authorisation by the RBAC objects the API holds.

- Tokens map to users: the admin token is `kubernetes-admin` in `system:masters` (which the
  real authorizer chain lets do anything); a ServiceAccount's token is
  `system:serviceaccount:<namespace>:<name>` in `system:serviceaccounts`,
  `system:serviceaccounts:<namespace>` and `system:authenticated`
  (pkg/serviceaccount/util.go UserInfo); a request without a token is `system:anonymous`; an
  unknown token is 401.
- RBAC as plugin/pkg/auth/authorizer/rbac/rbac.go evaluates it: the rules of every
  ClusterRole bound by a ClusterRoleBinding whose subjects name the user (appliesTo), and in a
  namespace the rules of its RoleBindings' Roles and ClusterRoles; a rule allows a request
  when its verbs, apiGroups, resources (`<resource>/<subresource>`, `*`, `*/<subresource>`)
  and resourceNames match (pkg/apis/rbac/v1/evaluation_helpers.go RuleAllows). Discovery is
  open to authenticated users (the system:discovery ClusterRole). A refusal is the 403 of
  endpoints/handlers/responsewriters/errors.go ForbiddenStatusError.
- OwnerReferencesPermissionEnforcement (plugin/pkg/admission/gc/gc_admission.go): setting or
  changing ownerReferences needs `delete` on the object itself, and a new
  `blockOwnerDeletion: true` needs `update` on the owner's `<resource>/finalizers`.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

from .errors import ApiError, forbidden
from .store import Body, Resource, Store

CLUSTER_ROLES: Resource = ("rbac.authorization.k8s.io", "v1", "clusterroles")
CLUSTER_ROLE_BINDINGS: Resource = ("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
ROLES: Resource = ("rbac.authorization.k8s.io", "v1", "roles")
ROLE_BINDINGS: Resource = ("rbac.authorization.k8s.io", "v1", "rolebindings")
RBAC_RESOURCES = {CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS, ROLES, ROLE_BINDINGS}


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def superuser(self) -> bool:
        return "system:masters" in self.groups


ADMIN = User("kubernetes-admin", ("system:masters", "system:authenticated"))
ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))
ADMIN_TOKEN = "emulator-admin-token"


def service_account(namespace: str, name: str) -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


@dataclasses.dataclass(frozen=True)
class Attributes:
    """authorizer.AttributesRecord for a resource request."""

    user: User
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str | None
    name: str | None


class Authenticator:
    def __init__(self) -> None:
        self.tokens: dict[str, User] = {ADMIN_TOKEN: ADMIN}

    def issue(self, user: User) -> str:
        """A bearer token for `user` (what a ServiceAccount token Secret would hold)."""
        token = f"emulator-{secrets.token_hex(16)}"
        self.tokens[token] = user
        return token

    def user_of(self, authorization: str | None) -> User:
        if not authorization:
            return ANONYMOUS
        scheme, _, token = authorization.partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user


class Authorizer:
    """RBAC over the roles and bindings in the store, recompiled when any of them changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._rules: dict[tuple[str, str | None], list[Body]] = {}
        # every decision made since the RBAC objects last changed
        self._decisions: dict[tuple[str | None, ...], bool] = {}
        store.listeners.append(self._forget)

    def _forget(self, event: Any) -> None:
        if event.resource in RBAC_RESOURCES:
            self._rules.clear()
            self._decisions.clear()

    def allowed(self, attributes: Attributes) -> bool:
        user = attributes.user
        if user.superuser:
            return True
        key = (user.name, attributes.verb, attributes.group, attributes.resource,
               attributes.subresource, attributes.namespace, attributes.name)  # fmt: skip
        decided = self._decisions.get(key)
        if decided is None:
            rules = self._rules_for(user, None)
            if attributes.namespace is not None:
                rules = rules + self._rules_for(user, attributes.namespace)
            if len(self._decisions) > 100_000:
                self._decisions.clear()
            decided = self._decisions[key] = any(_rule_allows(r, attributes) for r in rules)
        return decided

    def _rules_for(self, user: User, namespace: str | None) -> list[Body]:
        key = (user.name, namespace)
        found = self._rules.get(key)
        if found is None:
            found = self._rules[key] = self._collect(user, namespace)
        return found

    def _collect(self, user: User, namespace: str | None) -> list[Body]:
        rules: list[Body] = []
        bindings = (
            list(self.store.all(CLUSTER_ROLE_BINDINGS))
            if namespace is None
            else [
                b
                for b in self.store.all(ROLE_BINDINGS)
                if b["metadata"].get("namespace") == namespace
            ]
        )
        for binding in bindings:
            if not any(
                _applies_to(subject, user, namespace) for subject in binding.get("subjects") or ()
            ):
                continue
            ref = binding.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                role = self.store.get(CLUSTER_ROLES, None, ref.get("name", ""))
            else:
                role = self.store.get(ROLES, namespace, ref.get("name", ""))
            if role is not None:
                rules += role.get("rules") or []
        return rules

    def check(self, attributes: Attributes) -> None:
        """403 unless allowed, worded as ForbiddenStatusError."""
        if not self.allowed(attributes):
            raise forbidden_error(attributes)


def forbidden_error(attributes: Attributes, reason: str = "") -> ApiError:
    resource = attributes.resource
    if attributes.subresource:
        resource += f"/{attributes.subresource}"
    where = (
        f'in the namespace "{attributes.namespace}"'
        if attributes.namespace
        else "at the cluster scope"
    )
    message = (
        f'User "{attributes.user.name}" cannot {attributes.verb} resource "{resource}" in API '
        f'group "{attributes.group}" {where}'
    )
    if reason:
        message += f": {reason}"
    return forbidden(attributes.resource, attributes.group, attributes.name, message)


def _applies_to(subject: Body, user: User, namespace: str | None) -> bool:
    """rbac.go appliesToUser."""
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user.name)
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace or ""
        return user.name == f"system:serviceaccount:{sa_namespace}:{subject.get('name')}"
    return False


def _rule_allows(rule: Body, attributes: Attributes) -> bool:
    """evaluation_helpers.go RuleAllows for a resource request."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attributes.verb not in verbs:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attributes.group not in groups:
        return False
    combined = attributes.resource + (
        f"/{attributes.subresource}" if attributes.subresource else ""
    )
    resources = rule.get("resources") or []
    if not any(
        r == "*" or r == combined or (attributes.subresource and r == f"*/{attributes.subresource}")
        for r in resources
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or (attributes.name is not None and attributes.name in names)


def owner_references_admission(
    authorizer: Authorizer,
    user: User,
    attributes: Attributes,
    new: Body,
    old: Body | None,
    plural_of: Any,
) -> None:
    """gc_admission.go gcPermissionsEnforcement.Validate."""
    if user.superuser:
        return
    new_refs = (new.get("metadata") or {}).get("ownerReferences") or []
    old_refs = ((old or {}).get("metadata") or {}).get("ownerReferences") or []
    if new_refs == old_refs or (old is None and not new_refs):
        return
    delete = dataclasses.replace(attributes, verb="delete", subresource="")
    if not authorizer.allowed(delete):
        raise _admission_forbidden(
            attributes, "cannot set an ownerRef on a resource you can't delete: , <nil>"
        )
    old_by_uid = {ref.get("uid"): ref for ref in old_refs}
    for ref in new_refs:
        if ref.get("blockOwnerDeletion") is not True:
            continue
        previous = old_by_uid.get(ref.get("uid"))
        if previous is not None and previous.get("blockOwnerDeletion") is True:
            continue
        group = (
            ref.get("apiVersion", "").rpartition("/")[0] if "/" in ref.get("apiVersion", "") else ""
        )
        plural = plural_of(ref.get("apiVersion", ""), ref.get("kind", ""))
        finalizers = Attributes(
            user, "update", group, plural or "", "finalizers", attributes.namespace, ref.get("name")
        )
        if plural is None or not authorizer.allowed(finalizers):
            raise _admission_forbidden(
                attributes,
                "cannot set blockOwnerDeletion if an ownerReference refers to a resource you "
                "can't set finalizers on: , <nil>",
            )


def _admission_forbidden(attributes: Attributes, message: str) -> ApiError:
    """admission.NewForbidden: `<resource> "<name>" is forbidden: <message>`."""
    return forbidden(attributes.resource, attributes.group, attributes.name, message)
