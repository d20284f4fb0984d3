"""Administrators manage users through the API; a role with ``admin`` makes one."""

from __future__ import annotations

import pytest
from flask import Flask

from tailorcrm.errors import ValidationFailed
from tailorcrm.platform import Platform
from tailorcrm.platform.auth import create_token, create_user, find_user, set_password
from tests.conftest import Api

CHIEF = {"kind": "role", "name": "chief", "label": "Chief", "admin": True}
READER = {
    "kind": "role",
    "name": "reader",
    "label": "Reader",
    "entities": {"opportunity": {"read": "all"}},
}


def _token_of(platform: Platform, username: str) -> Api:
    with platform.engine.begin() as connection:
        return create_token(connection, find_user(connection, username))


def test_an_admin_creates_a_user_with_roles_and_attributes(
    app: Flask, crm: Api, platform: Platform
) -> None:
    crm.put("/meta/roles/reader", json=READER)

    created = crm.post(
        "/users",
        json={"username": "ines.park", "roles": ["reader"], "attributes": {"zone": 4}},
    )
    ines = Api(app.test_client(), _token_of(platform, "ines.park"))
    crm.post("/opportunity", json={"title": "Kiln"})

    assert created.status_code == 201, created.json
    assert len(created.json["password"]) >= 10
    assert created.json["roles"] == ["reader"]
    assert created.json["attributes"] == {"zone": 4}
    assert [r["title"] for r in ines.get("/opportunity").json["data"]] == ["Kiln"]
    assert ines.post("/opportunity", json={"title": "x"}).status_code == 403


def test_bad_user_bodies_are_refused_and_change_nothing(crm: Api) -> None:
    unknown_role = crm.post("/users", json={"username": "ines.park", "roles": ["x"]})
    bad_name = crm.post("/users", json={"username": "no spaces please"})
    extra = crm.patch("/users/admin", json={"is_admin": True})

    assert unknown_role.status_code == 422
    assert unknown_role.json["errors"][0]["field"] == "roles"
    assert crm.get("/users/ines.park").status_code == 404
    assert bad_name.status_code == 422
    assert extra.status_code == 400


def test_a_role_with_admin_makes_an_administrator_and_deactivation_ends_access(
    app: Flask, crm: Api, platform: Platform
) -> None:
    crm.put("/meta/roles/chief", json=CHIEF)
    crm.post("/users", json={"username": "olga.chief", "roles": ["chief"]})
    chief = Api(app.test_client(), _token_of(platform, "olga.chief"))

    changed = chief.put(
        "/meta/entities/thing", json={"name": "thing", "label": "Thing", "fields": []}
    )
    listed = chief.get("/users")
    crm.patch("/users/olga.chief", json={"active": False})

    assert changed.status_code == 201, changed.json
    assert "olga.chief" in [user["username"] for user in listed.json["data"]]
    assert chief.get("/users").status_code == 401
    assert crm.get("/users/olga.chief").json["active"] is False


def test_the_last_active_administrator_cannot_be_deactivated(
    crm: Api, platform: Platform
) -> None:
    refused = crm.patch("/users/admin", json={"active": False})
    still_listed = crm.get("/users/admin")
    with platform.engine.begin() as connection:
        create_user(connection, "noor.vale", "long-enough-pw", is_admin=True)
    deactivated = crm.patch("/users/admin", json={"active": False})

    assert refused.status_code == 409, refused.json
    assert "last active administrator" in refused.json["detail"]
    assert still_listed.json["active"] is True
    assert deactivated.status_code == 200, deactivated.json
    assert deactivated.json["active"] is False


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"])
def test_attribute_text_no_database_takes_is_refused_at_its_name(
    crm: Api, text: str
) -> None:
    refused = crm.patch("/users/admin", json={"attributes": {"zone": text}})
    listed = crm.get(
        "/opportunity",
        query_string={"filter": '{"==": [{"var": "title"}, {"var": "$user.zone"}]}'},
    )

    assert refused.status_code == 422
    assert [(e["field"], e["code"]) for e in refused.json["errors"]] == [
        ("attributes.zone", "invalid_text")
    ]
    assert crm.get("/users/admin").json["attributes"] == {}
    assert listed.status_code == 200


@pytest.mark.parametrize("label", ["North\x00", "\ud800"])
def test_a_team_label_no_database_takes_is_refused(crm: Api, label: str) -> None:
    created = crm.post("/teams", json={"name": "harbour", "label": label})
    crm.post("/teams", json={"name": "quay"})
    changed = crm.patch("/teams/quay", json={"label": label})

    assert created.status_code == changed.status_code == 422
    assert created.json["errors"][0]["field"] == "label"
    assert changed.json["errors"][0]["field"] == "label"
    assert crm.get("/teams/harbour").status_code == 404
    assert crm.get("/teams/quay").json["label"] == "quay"


def test_a_whole_number_attribute_past_64_bits_is_refused(crm: Api) -> None:
    refused = crm.patch("/users/admin", json={"attributes": {"zone": 2**64 + 1}})
    kept = crm.patch("/users/admin", json={"attributes": {"zone": 2**63 - 1}})

    assert refused.status_code == 422
    assert refused.json["errors"][0]["field"] == "attributes.zone"
    assert kept.status_code == 200
    assert crm.get("/users/admin").json["attributes"] == {"zone": 2**63 - 1}


@pytest.mark.parametrize("password", ["long enough\x00", "\ud800" * 10])
def test_a_password_no_one_could_sign_in_with_is_refused(
    crm: Api, platform: Platform, password: str
) -> None:
    created = crm.post("/users", json={"username": "ines.park", "password": password})
    with platform.engine.begin() as connection:
        admin = find_user(connection, "admin")
        with pytest.raises(ValidationFailed) as excinfo:
            set_password(connection, admin.id, password)

    assert created.status_code == 422
    assert created.json["errors"][0]["field"] == "password"
    assert crm.get("/users/ines.park").status_code == 404
    assert excinfo.value.problems[0].field == "password"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/users", {"username": "ines.park", "role": ["reader"]}, "role"),
        ("/users", {"roles": []}, "username"),
        ("/users", {"username": "ines.park", "password": 5}, "password"),
        ("/users", {"username": "ines.park", "roles": "reader"}, "roles"),
        ("/users", {"username": "ines.park", "attributes": []}, "attributes"),
        ("/users/admin", {"active": True}, "active"),
        ("/teams", {"name": "harbour", "member": ["admin"]}, "member"),
        ("/teams", {"label": "Harbour"}, "name"),
        ("/teams", {"name": "harbour", "label": 7}, "label"),
        ("/teams", {"name": "harbour", "members": "admin"}, "members"),
    ],
)
def test_a_bad_user_or_team_body_names_its_key_in_errors(
    crm: Api, path: str, body: dict, field: str
) -> None:
    """A misspelt key (``role`` for ``roles``) used to get only the list of keys
    the request takes, and none of these named their key in ``errors``."""
    send = crm.patch if path.startswith("/users/") else crm.post

    response = send(path, json=body)

    assert response.status_code == 400
    assert [e["field"] for e in response.json["errors"]] == [field]
    assert field in response.json["detail"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/users", {"username": "dana.vale"}, "username"),
        ("/teams", {"name": "harbour"}, "name"),
    ],
)
def test_a_name_already_taken_is_named_in_errors(
    crm: Api, path: str, body: dict, field: str
) -> None:
    assert crm.post(path, json=body).status_code == 201

    response = crm.post(path, json=body)

    assert response.status_code == 409
    assert [(e["field"], e["code"]) for e in response.json["errors"]] == [
        (field, "unique")
    ]
