"""Settings are frozen and validated when built; a bad value names its field and what is accepted."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from generator import config
from generator.config import ConfigError


def test_environments_differ_where_they_should():
    dev, staging, prod = (config.get(n) for n in ("dev", "staging", "prod"))
    assert (dev.az_count, staging.az_count, prod.az_count) == (2, 2, 3)
    assert (dev.nat_gateway_count, staging.nat_gateway_count, prod.nat_gateway_count) == (1, 1, 3)
    assert dev.log_retention_days == 7  # a week, as in the sketch
    assert dev.log_retention_days < staging.log_retention_days < prod.log_retention_days
    assert [c.spot_default for c in (dev, staging, prod)] == [True, False, False]
    assert [c.retain_data for c in (dev, staging, prod)] == [False, False, True]
    assert {c.region for c in (dev, staging, prod)} == {"ap-northeast-1"}


def test_vpc_ranges_never_overlap():
    nets = [ipaddress.ip_network(c.vpc_cidr) for c in config.ENVIRONMENTS.values()]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.get("dev").az_count = 3  # type: ignore[misc]


@pytest.mark.parametrize("change, field, accepted", [
    ({"vpc_cidr": "10.0.0.0/33"}, "vpc_cidr", "/16"),
    ({"vpc_cidr": "8.8.0.0/16"}, "vpc_cidr", "private"),
    ({"vpc_cidr": "10.10.0.0/20"}, "vpc_cidr", "/16"),
    ({"az_count": 4}, "az_count", "2 or 3"),
    ({"az_count": 1}, "az_count", "2 or 3"),
    ({"log_retention_days": 8}, "log_retention_days", "7, 14"),
    ({"task_cpu": 1000}, "task_cpu", "1024"),
    ({"task_memory": 1024}, "task_memory", "2048-8192"),
    ({"region": "mars"}, "region", "ap-northeast-1"),
])
def test_invalid_values_are_rejected_naming_field_and_accepted_values(change, field, accepted):
    with pytest.raises(ConfigError) as e:
        config.override(config.get("dev"), **change)
    assert f"invalid {field}" in str(e.value) and accepted in str(e.value)
    assert str(e.value).startswith("dev: ")


def test_unknown_setting_is_rejected():
    with pytest.raises(ConfigError, match="unknown setting.*nat_per_region"):
        config.override(config.get("dev"), nat_per_region=True)


def test_overlapping_environment_ranges_are_rejected():
    envs = dict(config.ENVIRONMENTS)
    envs["staging"] = config.override(envs["staging"], vpc_cidr=envs["dev"].vpc_cidr)
    with pytest.raises(ConfigError, match="overlaps"):
        config.check_environments(envs)


def test_unknown_environment_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: dev, prod, staging"):
        config.get("qa")
