"""The local service's operations on records alone: models, endpoint configs, tags, lists.

Nothing here runs a container: a Model or an EndpointConfig is a record in the
:class:`Store` (with its tags) until an endpoint uses it. Each method takes the validated input
members of its control-plane operation and returns the output members. The endpoint
operations, which do run containers, are :class:`~smlocal.emulator.service.hosting.
HostingService`'s, which builds on this class.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from smlocal.emulator.aws_errors import AwsError
from smlocal.emulator.service.resources import already_exists, arn, not_found
from smlocal.emulator.service.serverless_rules import check_serverless_config
from smlocal.emulator.service.store import InvalidToken, Kind, ListQuery, Store

__all__ = ["Catalog", "Params", "public"]

Params = dict[str, Any]


class Catalog:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- models ------------------------------------------------------------------------
    async def create_model(self, p: Params) -> Params:
        name = p["ModelName"]
        if self.store.get(Kind.MODEL, name) is not None:
            raise already_exists("model", name)
        record = {**p, "ModelArn": arn("model", name), "CreationTime": time.time()}
        record.pop("Tags", None)
        self.store.insert(Kind.MODEL, name, record)
        self._tag(record["ModelArn"], p)
        return {"ModelArn": record["ModelArn"]}

    async def describe_model(self, p: Params) -> Params:
        return self._get(Kind.MODEL, "model", p["ModelName"])

    async def delete_model(self, p: Params) -> Params:
        self._delete(Kind.MODEL, "model", p["ModelName"], "ModelArn")
        return {}

    async def list_models(self, p: Params) -> Params:
        return self._list(Kind.MODEL, p, "Models", ("ModelName", "ModelArn", "CreationTime"))

    # ---- endpoint configs ----------------------------------------------------------------
    async def create_endpoint_config(self, p: Params) -> Params:
        name = p["EndpointConfigName"]
        if self.store.get(Kind.ENDPOINT_CONFIG, name) is not None:
            raise already_exists("endpoint-config", name)
        check_serverless_config(p, lambda model: self.store.get(Kind.MODEL, model))
        config_arn = arn("endpoint-config", name)
        record = {**p, "EndpointConfigArn": config_arn, "CreationTime": time.time()}
        record.pop("Tags", None)
        self.store.insert(Kind.ENDPOINT_CONFIG, name, record)
        self._tag(config_arn, p)
        return {"EndpointConfigArn": config_arn}

    async def describe_endpoint_config(self, p: Params) -> Params:
        return self._get(Kind.ENDPOINT_CONFIG, "endpoint-config", p["EndpointConfigName"])

    async def delete_endpoint_config(self, p: Params) -> Params:
        # AWS does not block deleting a config in use (it only warns): neither do we.
        self._delete(
            Kind.ENDPOINT_CONFIG, "endpoint-config", p["EndpointConfigName"], "EndpointConfigArn"
        )
        return {}

    async def list_endpoint_configs(self, p: Params) -> Params:
        return self._list(
            Kind.ENDPOINT_CONFIG,
            p,
            "EndpointConfigs",
            ("EndpointConfigName", "EndpointConfigArn", "CreationTime"),
        )

    # ---- tags ----------------------------------------------------------------------------
    async def add_tags(self, p: Params) -> Params:
        self.store.add_tags(p["ResourceArn"], p["Tags"])
        return {"Tags": p["Tags"]}

    async def list_tags(self, p: Params) -> Params:
        try:
            tags, token = self.store.list_tags(
                p["ResourceArn"], int(p.get("MaxResults", 50)), p.get("NextToken")
            )
        except InvalidToken as error:
            raise AwsError("ValidationException", f"Invalid NextToken: {error}.") from None
        return {"Tags": tags, **({"NextToken": token} if token else {})}

    async def delete_tags(self, p: Params) -> Params:
        self.store.delete_tags(p["ResourceArn"], p["TagKeys"])
        return {}

    def _require(self, kind: Kind, word: str, name: str) -> dict[str, Any]:
        record = self.store.get(kind, name)
        if record is None:
            raise not_found(word, name)
        return record

    def _get(self, kind: Kind, word: str, name: str) -> dict[str, Any]:
        return public(self._require(kind, word, name))

    def _delete(self, kind: Kind, word: str, name: str, arn_key: str) -> None:
        record = self._require(kind, word, name)
        self.store.delete(kind, name)
        self.store.delete_all_tags(record[arn_key])

    def _tag(self, resource_arn: str, p: Params) -> None:
        if p.get("Tags"):
            self.store.add_tags(resource_arn, p["Tags"])

    def _list(self, kind: Kind, p: Params, key: str, fields: tuple[str, ...]) -> Params:
        query = ListQuery(
            name_contains=p.get("NameContains"),
            creation_time_before=_epoch(p.get("CreationTimeBefore")),
            creation_time_after=_epoch(p.get("CreationTimeAfter")),
            last_modified_time_before=_epoch(p.get("LastModifiedTimeBefore")),
            last_modified_time_after=_epoch(p.get("LastModifiedTimeAfter")),
            status_equals=p.get("StatusEquals"),
            sort_by=p.get("SortBy", "CreationTime"),
            sort_order=p.get("SortOrder", "Descending"),
            max_results=int(p.get("MaxResults", 10)),
            next_token=p.get("NextToken"),
        )
        try:
            records, token = self.store.page(kind, query)
        except InvalidToken as error:
            raise AwsError("ValidationException", f"Invalid NextToken: {error}.") from None
        page = [{f: r[f] for f in fields if r.get(f) is not None} for r in records]
        return {key: page, **({"NextToken": token} if token else {})}


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record as Describe* answers it: without smlocal's own keys and unset members."""
    return {k: v for k, v in record.items() if v is not None and not k.startswith("_")}


def _epoch(value: Any) -> float | None:
    """A JSON 1.1 timestamp (epoch seconds, or the ISO-8601 the parser also accepts)."""
    if value is None or isinstance(value, (int, float)):
        return value
    moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
