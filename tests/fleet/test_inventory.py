"""Target groups expand at run time, each target with its labels (cluster, city, environment)."""

from __future__ import annotations

from civicq_ops.config import load_project
from civicq_ops.fleet.inventory import Resolver, city_of, expand, selected
from tests.fleet.conftest import CITIES, dead_url


def project(project_file, fleet: str, env: dict | None = None):
    return load_project(project_file(f"version: 1\nfleet:\n{fleet}"), env=env or {})


def test_every_database_of_a_cluster_expands_without_templates(project_file, fleet_cluster):
    p = project(project_file, f'  groups:\n    east: {{cluster: "{fleet_cluster.url()}", databases: "*"}}\n')
    names = [t.name for t in expand(p).targets]
    assert {f"east/{c}" for c in CITIES} <= set(names)
    assert "east/postgres" in names
    assert not any(n.endswith(("template0", "template1")) for n in names)


def test_include_and_exclude_patterns_pick_the_databases(project_file, fleet_cluster):
    p = project(project_file, f'  groups:\n    east: {{cluster: "{fleet_cluster.url()}", databases: "*", '
                              f'include: ["city_*"], exclude: ["city_1*"]}}\n')
    names = sorted(t.name for t in expand(p).targets)
    assert names == [f"east/city_{i:02d}" for i in range(10)]


def test_each_expanded_target_has_cluster_city_and_environment_labels(project_file, fleet_cluster):
    p = project(project_file, f'  groups:\n    east: {{cluster: "{fleet_cluster.url()}", databases: "*", include: ["city_03"],'
                              f' city: "city_(.*)", environment: staging, labels: {{team: civic}}}}\n')
    [t] = expand(p).targets
    assert t.labels == {"cluster": "east", "city": "03", "environment": "staging", "team": "civic"}
    assert t.target.environment == "staging" and "city_03" in (t.target.url or "")


def test_a_directory_of_target_files_expands(project_file, fleet_cluster, tmp_path):
    (tmp_path / "fleet.d").mkdir()
    (tmp_path / "fleet.d" / "west.yaml").write_text(
        f'targets:\n  oakland: {{url: "{fleet_cluster.url("city_00")}", labels: {{city: oakland}}}}\n'
        f'  fresno: {{url: "${{FRESNO_URL}}", environment: staging}}\n')
    p = project(project_file, "  groups:\n    west: {directory: fleet.d, labels: {cluster: west-1}}\n",
                env={"FRESNO_URL": fleet_cluster.url("city_01")})
    targets = {t.name: t for t in expand(p).targets}
    assert set(targets) == {"west/oakland", "west/fresno"}
    assert targets["west/oakland"].labels["city"] == "oakland"
    assert targets["west/fresno"].labels == {"cluster": "west-1", "city": "fresno", "environment": "staging"}


def test_a_query_against_an_inventory_database_expands(project_file, fleet_cluster):
    with fleet_cluster.admin("scratch") as conn:
        conn.execute("TRUNCATE inventory")
        conn.execute("INSERT INTO inventory VALUES ('sj', %s, 'san-jose', 'production', 'ops'), (NULL, 'x', 'y', 'z', 'w')",
                     (fleet_cluster.url("city_02"),))
    p = project(project_file, f'  groups:\n    inv: {{inventory: "{fleet_cluster.url("scratch")}", '
                              f'query: "SELECT name, url, city, environment, team FROM inventory"}}\n')
    [t] = expand(p).targets
    assert t.name == "inv/sj"
    assert t.labels == {"cluster": "inv", "city": "san-jose", "environment": "production", "team": "ops"}


def test_a_group_whose_cluster_is_down_is_a_problem_of_that_group_only(project_file, fleet_cluster):
    p = project(project_file, f'  groups:\n    east: {{cluster: "{fleet_cluster.url()}", databases: "*", include: ["city_0*"]}}\n'
                              f'    gone: {{cluster: "{dead_url()}", databases: "*"}}\n')
    inventory = expand(p)
    assert len(inventory.targets) == 10
    assert "cannot connect" in inventory.problems["gone"]


def test_a_worker_rebuilds_a_target_from_its_name_alone(project_file, fleet_cluster):
    p = project(project_file, f'  groups:\n    east: {{cluster: "{fleet_cluster.url()}", databases: "*"}}\n')
    t = Resolver(p).get("east/city_07")
    assert t.labels["city"] == "city_07" and "city_07" in (t.target.url or "")


def test_patterns_and_city_labels():
    assert selected(["a1", "a2", "b1"], ["a*"], ["*2"]) == ["a1"]
    assert selected(["a1", "b1"], None, None) == ["a1", "b1"]
    assert city_of("city_oakland", r"city_(\w+)") == "oakland"
    assert city_of("other", r"city_(\w+)") == "other"


def test_a_city_pattern_that_is_not_a_regular_expression_is_exit_2_at_its_line(project_file, fleet_cluster):
    import pytest

    from civicq_ops.core.errors import ConfigError

    p = project(project_file, f'  groups:\n    east: {{cluster: "{fleet_cluster.url()}", databases: "*", city: "city_(.*"}}\n')
    with pytest.raises(ConfigError, match=r"civicq-ops.yaml:4:\d+: fleet.groups.east.city is not a regular expression"):
        expand(p)


def test_the_same_target_in_two_files_of_a_group_is_refused_naming_both(project_file, fleet_cluster, tmp_path):
    import pytest

    from civicq_ops.core.errors import ConfigError

    (tmp_path / "fleet.d").mkdir()
    for name in ("a.yaml", "b.yaml"):
        (tmp_path / "fleet.d" / name).write_text(f'targets:\n  oakland: {{url: "{fleet_cluster.url("city_00")}"}}\n')
    p = project(project_file, "  groups:\n    west: {directory: fleet.d}\n")
    with pytest.raises(ConfigError, match=r"'oakland' is in both .*a\.yaml and .*b\.yaml"):
        expand(p)


def test_a_static_target_with_an_unset_variable_is_its_own_problem_not_the_fleets(project_file, fleet_cluster):
    path = project_file("version: 1\ntargets:\n  staging: {url: '${STAGING_URL}'}\n"
                        f"fleet:\n  groups:\n    east: {{cluster: \"{fleet_cluster.url()}\", databases: \"*\", "
                        'include: ["city_0*"]}\n')
    inventory = expand(load_project(path, env={}))
    assert len(inventory.targets) == 10
    assert "STAGING_URL" in inventory.problems["staging"]
