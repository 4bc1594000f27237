"""Settings are frozen and validated when built; a bad value names its field and what is accepted."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from generator import aws_facts, config
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


def test_data_tiers_grow_and_gain_redundancy_towards_prod():
    dev, staging, prod = (config.get(n) for n in ("dev", "staging", "prod"))
    assert [c.db_instance_class for c in (dev, staging, prod)] == ["db.t4g.micro", "db.t4g.medium", "db.m7g.large"]
    assert dev.db_storage_gib < staging.db_storage_gib < prod.db_storage_gib
    assert dev.backup_retention_days < staging.backup_retention_days < prod.backup_retention_days
    assert [c.multi_az for c in (dev, staging, prod)] == [False, False, True]
    assert [c.cache_node_count for c in (dev, staging, prod)] == [1, 1, 2]
    assert [c.cache_node_type for c in (dev, staging, prod)] == ["cache.t4g.micro", "cache.t4g.small",
                                                                 "cache.m7g.large"]
    assert [c.cache_snapshot_retention_days for c in (dev, staging, prod)] == [0, 0, 7]
    # Alarm thresholds follow the database's size.
    assert dev.db_min_free_storage_gib < staging.db_min_free_storage_gib < prod.db_min_free_storage_gib
    assert dev.db_min_freeable_memory_mib < staging.db_min_freeable_memory_mib < prod.db_min_freeable_memory_mib
    assert dev.db_max_connections < staging.db_max_connections < prod.db_max_connections


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
    ({"task_memory": 1024}, "task_memory", "for task_cpu 2048: 4096-16384"),
    ({"max_source_minutes": 0}, "max_source_minutes", "1-600 minutes"),
    ({"region": "mars"}, "region", "ap-northeast-1"),
    ({"api_rate_limit": 0}, "api_rate_limit", "1-10000"),
    ({"api_rate_limit": 20_000, "api_burst_limit": 5_000}, "api_rate_limit", "1-10000"),
    ({"api_burst_limit": 5}, "api_burst_limit", "api_rate_limit (10) to 5000"),
    ({"api_burst_limit": 6_000}, "api_burst_limit", "to 5000"),
    ({"db_instance_class": "t4g.micro"}, "db_instance_class", "db.t4g.micro"),
    ({"db_storage_gib": 10}, "db_storage_gib", "20-65536"),
    ({"db_max_storage_gib": 21}, "db_max_storage_gib", "22-65536"),
    ({"backup_retention_days": 0}, "backup_retention_days", "1-35"),
    ({"backup_retention_days": 36}, "backup_retention_days", "1-35"),
    ({"cache_node_type": "m7g.large"}, "cache_node_type", "cache.t4g.micro"),
    ({"cache_snapshot_retention_days": 40}, "cache_snapshot_retention_days", "0-35"),
    ({"db_min_free_storage_gib": 20}, "db_min_free_storage_gib", "1-19 GiB"),
    ({"db_min_free_storage_gib": 0}, "db_min_free_storage_gib", "1-19 GiB"),
    ({"db_min_freeable_memory_mib": 0}, "db_min_freeable_memory_mib", "1-65536"),
    ({"db_max_connections": 6000}, "db_max_connections", "1-5000"),
    ({"max_concurrent_videos": 0}, "max_concurrent_videos", "1-1000 videos"),
    ({"max_concurrent_videos": 4}, "max_concurrent_videos", "1-3 videos: max_concurrent_videos x 2 vCPU"),
    ({"max_concurrent_videos": 4, "task_cpu": 2048, "task_memory": 4096}, "max_concurrent_videos",
     "1-3 videos: max_concurrent_videos x 2 vCPU (task_cpu 2048) must fit fargate_vcpu_quota 6"),
    ({"fargate_vcpu_quota": 0}, "fargate_vcpu_quota", "a whole number of vCPU from 2"),
    ({"fargate_vcpu_quota": 1, "max_concurrent_videos": 1, "task_cpu": 2048, "task_memory": 4096},
     "fargate_vcpu_quota", "from 2 (one task of task_cpu 2048)"),
])
def test_invalid_values_are_rejected_naming_field_and_accepted_values(change, field, accepted):
    with pytest.raises(ConfigError) as e:
        config.override(config.get("dev"), **change)
    assert f"invalid {field}" in str(e.value) and accepted in str(e.value)
    assert str(e.value).startswith("dev: ")


def test_max_concurrent_videos_fits_the_fargate_vcpu_quota_assumed_for_the_account():
    """dev and staging fit what a new account may start with; prod needs the increase the README asks for."""
    dev, staging, prod = (config.get(n) for n in ("dev", "staging", "prod"))
    assert [c.max_concurrent_videos for c in (dev, staging, prod)] == [2, 2, 12]
    assert [c.fargate_vcpu_quota for c in (dev, staging, prod)] == [6, 6, 64]
    for cfg in (dev, staging, prod):
        assert cfg.max_concurrent_videos * cfg.task_cpu <= cfg.fargate_vcpu_quota * aws_facts.FARGATE_CPU_UNITS_PER_VCPU
    # The message says which quota is assumed: Spot where Spot is the default.
    with pytest.raises(ConfigError, match="Fargate Spot vCPU quota assumed"):
        config.override(dev, max_concurrent_videos=4)
    with pytest.raises(ConfigError, match="Fargate On-Demand vCPU quota assumed"):
        config.override(prod, max_concurrent_videos=17)
    assert config.override(prod, max_concurrent_videos=17, fargate_vcpu_quota=68).max_concurrent_videos == 17
    # Smaller tasks fit more of them in the same quota.
    smaller = config.override(staging, task_cpu=512, task_memory=1024, max_concurrent_videos=12)
    assert smaller.max_concurrent_videos == 12


def test_unknown_setting_is_rejected():
    with pytest.raises(ConfigError, match=r"unknown setting.*nat_per_region"):
        config.override(config.get("dev"), nat_per_region=True)


def test_overlapping_environment_ranges_are_rejected():
    envs = dict(config.ENVIRONMENTS)
    envs["staging"] = config.override(envs["staging"], vpc_cidr=envs["dev"].vpc_cidr)
    with pytest.raises(ConfigError, match="overlaps"):
        config.check_environments(envs)


def test_unknown_environment_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: dev, prod, staging"):
        config.get("qa")
