"""Checks of CreateReplicationConfig and ModifyReplicationConfig members, as DMS makes them."""

import json

from . import mappings
from .replication import DCU_VALUES, REPLICATION_TYPES, split_arn
from .wire import DmsError, check_types, enum_error

# Input members of the two operations (besides ReplicationConfigArn) and their JSON types.
CONFIG_MEMBERS = {
    "ReplicationConfigIdentifier": str, "ReplicationType": str, "SourceEndpointArn": str,
    "TargetEndpointArn": str, "ComputeConfig": dict, "ReplicationSettings": str,
    "SupplementalSettings": str, "TableMappings": str,
}
COMPUTE_MEMBERS = {
    "AvailabilityZone": str, "DnsNameServers": str, "KmsKeyId": str, "MaxCapacityUnits": int,
    "MinCapacityUnits": int, "MultiAZ": bool, "PreferredMaintenanceWindow": str,
    "ReplicationSubnetGroupId": str, "VpcSecurityGroupIds": (list, str),
}
TAG_MEMBERS = {"Key": str, "Value": str, "ResourceArn": str}
DEFAULT_PROVISIONED_UNITS = 4
MAX_IDENTIFIER = 255
MAX_RESOURCE_IDENTIFIER = 31


def invalid(message):
    return DmsError("InvalidParameterValueException", message)


def enum_violations(params):
    kind = params.get("ReplicationType")
    return [enum_error("replicationType", kind, REPLICATION_TYPES)] if kind is not None and \
        kind not in REPLICATION_TYPES else []


def check_identifier(name, value, longest):
    """DMS identifiers: 1..`longest` ASCII letters, digits and hyphens, starting with a
    letter, neither ending with a hyphen nor holding two in a row."""
    ok = (0 < len(value) <= longest and value.isascii() and value[0].isalpha() and not value.endswith("-")
          and "--" not in value and all(c.isalnum() or c == "-" for c in value))
    if not ok:
        raise invalid(f"The parameter {name} is not a valid identifier. Identifiers must begin with a letter; "
                      "must contain only ASCII letters, digits, and hyphens; and must not end with a hyphen "
                      f"or contain two consecutive hyphens. Its length is at most {longest}.")


def check_endpoint(name, value):
    try:
        split_arn(value, "endpoint")
    except ValueError:
        raise invalid(f"Invalid {name}: {value} is not an endpoint ARN "
                      "(arn:aws:dms:<region>:<account>:endpoint:<id>)") from None


def check_compute(compute):
    """The ComputeConfig to keep; raises the errors DMS answers."""
    check_types(COMPUTE_MEMBERS, compute, "ComputeConfig.")
    top, bottom = compute.get("MaxCapacityUnits"), compute.get("MinCapacityUnits")
    if top is None:
        raise invalid("ComputeConfig.MaxCapacityUnits is required")
    for name, value in (("MaxCapacityUnits", top), ("MinCapacityUnits", bottom)):
        if value is not None and value not in DCU_VALUES:
            raise invalid(f"Invalid ComputeConfig.{name}: {value}. "
                          f"Valid values are {', '.join(str(v) for v in DCU_VALUES)}")
    if bottom is not None and bottom > top:
        raise invalid(f"ComputeConfig.MinCapacityUnits ({bottom}) must not be greater than "
                      f"MaxCapacityUnits ({top})")
    kept = {name: value for name, value in compute.items() if name in COMPUTE_MEMBERS and value is not None}
    kept.setdefault("MultiAZ", False)
    return kept


def provisioned_units(compute):
    """The DCUs a run provisions: 4, within MinCapacityUnits..MaxCapacityUnits."""
    return min(compute["MaxCapacityUnits"], max(compute.get("MinCapacityUnits") or 1, DEFAULT_PROVISIONED_UNITS))


def check_mappings(text):
    try:
        mappings.parse(text)
    except mappings.MappingError as err:
        raise invalid(str(err)) from None


def check_settings(name, text):
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise invalid(f"Invalid {name}: the value must be a JSON object")


def check_tags(tags):
    for index, tag in enumerate(tags or [], 1):
        if not isinstance(tag, dict):
            raise DmsError("SerializationException", "Each tag must be an object")
        check_types(TAG_MEMBERS, tag, f"Tags.{index}.")


def check_members(params):
    """Shared checks of the members a create or modify gives (types already checked)."""
    if params.get("ReplicationConfigIdentifier") is not None:
        check_identifier("ReplicationConfigIdentifier", params["ReplicationConfigIdentifier"], MAX_IDENTIFIER)
    for name in ("SourceEndpointArn", "TargetEndpointArn"):
        if params.get(name) is not None:
            check_endpoint(name, params[name])
    if params.get("TableMappings") is not None:
        check_mappings(params["TableMappings"])
    for name in ("ReplicationSettings", "SupplementalSettings"):
        if params.get(name) is not None:
            check_settings(name, params[name])
