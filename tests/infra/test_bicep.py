"""Offline checks of infra/bicep (no Azure, no Bicep CLI, which cannot be installed here): every
.bicep file parses with both pycep-parser (the parser checkov uses; a file it cannot parse would be
silently left out of the checkov scan) and tree-sitter-bicep; main.bicepparam only sets parameters that
exist and sets every required one; UK South is enforced (the `location` parameter allows only uksouth,
every resource and module takes it, and the optional "Allowed locations" policy pins the resource
group); no parameter holding a secret has a default; the app settings equal local.settings.example.json
(host-only and local-only settings mapped as in the README's operator section) and secrets are Key Vault references;
the Flex Consumption site is configured as required; and every queue, table and container the code
uses (function-specs/*/function.json, handlers/storage/names.rs) exists in the storage module."""

from __future__ import annotations

import re
import warnings

import pytest

from conftest import (
    BICEP_DIR,
    MAIN_BICEP,
    ROOT,
    bicep_files,
    function_specs,
    local_settings,
    names_rs_list,
    rel,
    spec_queues,
    ts_errors,
    ts_property,
    ts_resources,
    ts_text,
)

FUNCTIONAPP = BICEP_DIR / "modules" / "functionapp.bicep"
STORAGE = BICEP_DIR / "modules" / "storage.bicep"
ALLOWED_LOCATIONS_POLICY = "e56962a6-4747-49cd-b67b-bf8b01975c4c"

# Resource types that are global by nature: Azure Monitor keeps only their configuration, and the
# built-in "Allowed locations" policy exempts location 'global'.
GLOBAL_TYPES = {"Microsoft.Insights/actionGroups"}

# Settings that Flex Consumption rejects or ignores (functions-app-settings.md, Flex deprecations).
FLEX_FORBIDDEN = re.compile(
    r"^(FUNCTIONS_WORKER_RUNTIME|FUNCTIONS_EXTENSION_VERSION|WEBSITE_RUN_FROM_PACKAGE|WEBSITE_CONTENT.*|"
    r"WEBSITE_TIME_ZONE|TZ|SCM_DO_BUILD_DURING_DEPLOYMENT|ENABLE_ORYX_BUILD)$"
)
# local.settings.example.json entries that are not app settings in Azure.
# FUNCTIONS_WORKER_RUNTIME: Core Tools needs it locally; Flex takes the runtime from functionAppConfig.
# SIXPENCE_DEV_AUTH: development sign-in; start-up refuses it in production, so Azure must never set it.
LOCAL_ONLY = {"FUNCTIONS_WORKER_RUNTIME", "SIXPENCE_DEV_AUTH", "SIXPENCE_WEBHOOK_ALLOW_LOOPBACK"}
HOST_PROVIDED = {"FUNCTIONS_CUSTOMHANDLER_PORT"}  # the host sets it for the child process
STORAGE_IDENTITY = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
}
# Settings only the Azure deployment has (telemetry with Entra ID auth).
AZURE_ONLY = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"} | STORAGE_IDENTITY

SECRET_PARAM_NAME = re.compile(r"(?i)(secret|password|passwd|pwd|token|apikey|key|connectionstring|connstr|credential|sas)$")
SECRET_SETTING_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|KEYS?|CONNECTION_STRING)(_|$)")


# --- parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_parses_with_pycep(path, pycep_parse):
    try:
        parsed = pycep_parse(path)
    except Exception as e:  # pycep raises lark errors with the position
        pytest.fail(f"{rel(path)} does not parse with pycep-parser (so checkov cannot scan it): {e}", pytrace=False)
    assert parsed.get("resources") or parsed.get("modules") or parsed.get("outputs"), f"{rel(path)} declares nothing"


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_parses_with_tree_sitter(path, ts_parse):
    errors = ts_errors(ts_parse(path).root_node)
    assert not errors, f"{rel(path)} has syntax errors: {errors}"


def test_bicepparam_matches_main(pycep_parse):
    """tree-sitter-bicep 1.1.0 and pycep do not know .bicepparam syntax, so check it by hand: it uses
    main.bicep, sets only parameters main.bicep declares and every one without a default, and each
    value parses as a Bicep expression."""
    path = BICEP_DIR / "main.bicepparam"
    src = path.read_text()
    assert re.search(r"^using\s+'\./main\.bicep'\s*$", src, re.M), "main.bicepparam must start with using './main.bicep'"
    assigned = re.findall(r"^param\s+(\w+)\s*=", src, re.M)
    params = pycep_parse(MAIN_BICEP)["parameters"]
    unknown = set(assigned) - set(params)
    assert not unknown, f"main.bicepparam sets parameters main.bicep does not declare: {sorted(unknown)}"
    required = {name for name, p in params.items() if p.get("default") is None}
    assert not required - set(assigned), f"main.bicepparam leaves required parameters unset: {sorted(required - set(assigned))}"
    as_bicep = re.sub(r"^using\s+.*$", "", src, flags=re.M)
    as_bicep = re.sub(r"^param\s+(\w+)\s*=", r"var \1 =", as_bicep, flags=re.M)
    from pycep import BicepParser

    try:
        BicepParser().parse(text=as_bicep)
    except Exception as e:
        pytest.fail(f"main.bicepparam values do not parse: {e}", pytrace=False)


# --- UK South -----------------------------------------------------------------------------------


def test_location_parameter_allows_only_uksouth(pycep_parse):
    location = pycep_parse(MAIN_BICEP)["parameters"].get("location")
    assert location, "main.bicep has no `location` parameter"
    allowed = [d["argument"] for d in location["decorators"] if d["type"] == "allowed"]
    assert allowed == [["uksouth"]], f"location must be @allowed(['uksouth']), found {allowed}"
    assert location.get("default") in (None, "uksouth")


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_every_resource_takes_location_from_the_parameter(path, ts_parse):
    root = ts_parse(path).root_node
    for symbol, rtype, body, decl in ts_resources(root):
        if " existing" in ts_text(decl).split("{", 1)[0]:
            continue
        value = ts_property(body, "location")
        if rtype in GLOBAL_TYPES:
            assert value is not None and ts_text(value) == "'global'", f"{rel(path)}: {symbol} ({rtype}) must be 'global'"
            continue
        if value is None:
            # Child resources (parent:, or a type with more than one segment) and role assignments
            # are not tracked resources and have no location of their own.
            is_child = ts_property(body, "parent") is not None or rtype.count("/") > 1
            assert is_child or rtype == "Microsoft.Authorization/roleAssignments", (
                f"{rel(path)}: {symbol} ({rtype}) sets no location"
            )
            continue
        assert value.type == "identifier" and ts_text(value) == "location", (
            f"{rel(path)}: {symbol} ({rtype}) has location {ts_text(value)}, not the `location` parameter"
        )


def test_every_module_gets_the_location(ts_parse):
    root = ts_parse(MAIN_BICEP).root_node
    modules = [d for d in root.named_children if d.type == "module_declaration"]
    assert modules
    for decl in modules:
        symbol = ts_text(decl.named_children[0])
        body = decl.named_children[-1]
        while body.type in ("if_statement", "for_statement"):
            body = body.named_children[-1]
        module_file = BICEP_DIR / ts_text(decl.named_children[1]).strip("'")
        if "param location" not in module_file.read_text():
            continue
        value = ts_property(ts_property(body, "params"), "location")
        assert value is not None and value.type == "identifier" and ts_text(value) == "location", (
            f"module {symbol} must get `location: location`"
        )


def test_allowed_locations_policy_is_optional_and_pins_the_location(pycep_parse):
    main = pycep_parse(MAIN_BICEP)
    assert main["parameters"].get("enforceLocationPolicy", {}).get("type") == "bool"
    text = MAIN_BICEP.read_text()
    assert re.search(r"module\s+\w+\s+'modules/policy\.bicep'\s*=\s*if\s*\(\s*enforceLocationPolicy\s*\)", text)
    policy = (BICEP_DIR / "modules" / "policy.bicep").read_text()
    assert ALLOWED_LOCATIONS_POLICY in policy
    assert re.search(r"listOfAllowedLocations:\s*{\s*value:\s*\[\s*location\s*\]", policy)


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_no_secret_parameter_has_a_default(path, pycep_parse):
    for name, p in pycep_parse(path).get("parameters", {}).items():
        secure = any(d["type"] == "secure" for d in p.get("decorators", []))
        named_secret = bool(SECRET_PARAM_NAME.search(name)) and p.get("type") in ("string", "object")
        if secure or named_secret:
            assert p.get("default") is None, f"{rel(path)}: parameter {name} holds a secret and must not have a default"
        if named_secret:
            assert secure, f"{rel(path)}: parameter {name} looks like a secret and must be @secure()"


def test_bicepparam_sets_no_secret(pycep_parse):
    src = (BICEP_DIR / "main.bicepparam").read_text()
    params = pycep_parse(MAIN_BICEP)["parameters"]
    for name in re.findall(r"^param\s+(\w+)\s*=", src, re.M):
        assert not any(d["type"] == "secure" for d in params[name]["decorators"]), f"main.bicepparam sets secure parameter {name}"
    assert not re.search(r"sk_live_|sk_test_|whsec_|AccountKey=|SharedAccessSignature", src)


# --- app settings -------------------------------------------------------------------------------


def bicep_settings(pycep_parse) -> tuple[set[str], set[str], set[str]]:
    main_vars = pycep_parse(MAIN_BICEP)["variables"]
    plain = {s["name"] for s in main_vars["plainSettings"]["value"]}
    secret = {s["name"] for s in main_vars["secretSettings"]["value"]}
    host = {s["name"] for s in pycep_parse(FUNCTIONAPP)["variables"]["hostSettings"]["value"]}
    return plain, secret, host


def test_app_settings_match_local_settings(pycep_parse):
    plain, secret, host = bicep_settings(pycep_parse)
    assert not plain & secret, f"settings both plain and secret: {plain & secret}"
    local = set(local_settings())
    expected = set()
    for name in local - LOCAL_ONLY - HOST_PROVIDED:
        expected |= STORAGE_IDENTITY if name == "AzureWebJobsStorage" else {name}
    in_bicep = plain | secret | host
    missing = expected - in_bicep
    assert not missing, f"local.settings.example.json settings with no app setting in infra/bicep: {sorted(missing)}"
    extra = in_bicep - expected - AZURE_ONLY
    assert not extra, f"app settings in infra/bicep that local.settings.example.json does not have: {sorted(extra)}"
    assert host >= AZURE_ONLY, f"host settings missing: {sorted(AZURE_ONLY - host)}"
    forbidden = sorted(n for n in in_bicep | {"AzureWebJobsStorage"} & in_bicep if FLEX_FORBIDDEN.match(n))
    assert not forbidden, f"settings Flex Consumption forbids: {forbidden}"
    assert "AzureWebJobsStorage" not in in_bicep, "use the identity-based AzureWebJobsStorage__* settings, not a connection string"


def test_secret_settings_are_key_vault_references(pycep_parse):
    plain, secret, _ = bicep_settings(pycep_parse)
    looks_secret = {n for n in plain if SECRET_SETTING_NAME.search(n)}
    assert not looks_secret, f"settings that look like secrets must be Key Vault references, not plain: {sorted(looks_secret)}"
    app = FUNCTIONAPP.read_text()
    assert "'@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${s.secretName})'" in app, (
        "secret settings must be versionless Key Vault references"
    )
    assert re.search(r"keyVaultReferenceIdentity:\s*identityId\b", app), "keyVaultReferenceIdentity must be the user-assigned identity"
    main_vars = pycep_parse(MAIN_BICEP)["variables"]
    for s in main_vars["secretSettings"]["value"]:
        assert isinstance(s.get("optional"), bool), f"secret setting {s['name']} needs optional: true|false"


def test_storage_identity_settings(pycep_parse):
    host = {s["name"]: s["value"] for s in pycep_parse(FUNCTIONAPP)["variables"]["hostSettings"]["value"]}
    assert host["AzureWebJobsStorage__credential"] == "managedidentity"
    assert host["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert host["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert "ClientId=${identityClientId};Authorization=AAD" in FUNCTIONAPP.read_text()


# --- the Flex site and the storage account ------------------------------------------------------


def test_flex_consumption_site(pycep_parse):
    resources = pycep_parse(FUNCTIONAPP)["resources"]
    plan = resources["plan"]["config"]
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    app = resources["app"]["config"]
    assert app["kind"] == "functionapp,linux"
    assert app["identity"]["type"] == "UserAssigned"
    props = app["properties"]
    assert props["httpsOnly"] is True
    site = props["siteConfig"]
    assert site["minTlsVersion"] == "1.2" and site["ftpsState"] == "Disabled"
    cfg = props["functionAppConfig"]
    assert cfg["runtime"] == {"name": "custom", "version": "1.0"}
    assert cfg["deployment"]["storage"]["type"] == "blobContainer"
    assert cfg["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    for policy in ("ftpCredentials", "scmCredentials"):
        assert resources[policy]["config"]["properties"]["allow"] is False


def test_storage_account_hardening(pycep_parse):
    resources = pycep_parse(STORAGE)["resources"]
    account = resources["account"]["config"]
    assert account["kind"] == "StorageV2"
    props = account["properties"]
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    blob = resources["blobService"]["config"]["properties"]
    assert blob["isVersioningEnabled"] is True
    assert blob["deleteRetentionPolicy"]["enabled"] is True
    assert blob["containerDeleteRetentionPolicy"]["enabled"] is True
    vault = pycep_parse(BICEP_DIR / "modules" / "keyvault.bicep")["resources"]["vault"]["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True and vault["enableSoftDelete"] is True and vault["enablePurgeProtection"] is True


def storage_list(pycep_parse, var: str) -> set[str]:
    return set(pycep_parse(STORAGE)["variables"][var]["value"])


def test_every_queue_the_code_uses_exists(pycep_parse):
    queues = storage_list(pycep_parse, "queueNames")
    from_specs = spec_queues()
    missing = {q: fn for q, fn in from_specs.items() if q not in queues}
    assert not missing, f"queues in function-specs missing from modules/storage.bicep queueNames: {missing}"
    listed = names_rs_list("QUEUES")
    if listed is None:
        warnings.warn("handlers/storage/names.rs has no QUEUES list yet; checked function-specs only")
    else:
        assert not set(listed) - queues, f"queues in names.rs missing from storage.bicep: {sorted(set(listed) - queues)}"
    text = STORAGE.read_text()
    assert "'${q}-poison'" in text and "concat(queueNames, poisonQueueNames)" in text, "every queue needs its -poison twin"


@pytest.mark.parametrize("list_name,var", [("TABLES", "tableNames"), ("CONTAINERS", "containerNames")])
def test_every_table_and_container_the_code_uses_exists(list_name, var, pycep_parse):
    listed = names_rs_list(list_name)
    if listed is None:
        warnings.warn(f"handlers/storage/names.rs has no {list_name} list yet; using the provisional list in storage.bicep")
        return
    missing = set(listed) - storage_list(pycep_parse, var)
    assert not missing, f"{list_name} in handlers/storage/names.rs missing from modules/storage.bicep {var}: {sorted(missing)}"


def test_functions_use_the_configured_storage_connection():
    """Bicep configures one storage connection (AzureWebJobsStorage, identity-based). A binding naming
    another connection would need its own <name>__*ServiceUri settings."""
    for fn, spec in function_specs().items():
        for b in spec.get("bindings", []):
            if b.get("type") in ("queueTrigger", "queue", "blobTrigger", "blob", "table"):
                assert b.get("connection", "AzureWebJobsStorage") == "AzureWebJobsStorage", (
                    f"function-specs/{fn}: binding {b.get('name')} uses connection {b.get('connection')}"
                )


def test_outputs(pycep_parse):
    outputs = set(pycep_parse(MAIN_BICEP)["outputs"])
    assert {"functionAppName", "defaultHostName", "identityClientId", "identityPrincipalId", "storageAccountName", "keyVaultName"} <= outputs


def test_roles_for_the_app_identity():
    rbac = (BICEP_DIR / "modules" / "rbac.bicep").read_text()
    for role_id in (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        "4633458b-17de-408a-b874-0445c86b69e6",  # Key Vault Secrets User
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
    ):
        assert role_id in rbac, f"rbac.bicep lacks role {role_id}"
    readme = ROOT.joinpath("README.md").read_text()
    assert "## Deploying to Azure (operators)" in readme, "README.md lacks the operator's section"
    for step in (
        "az deployment group what-if",
        "az deployment group create",
        "az keyvault secret set",
        "az functionapp deployment source config-zip",
        "/api/health",
    ):
        assert step in readme, f"the operator's section of README.md does not show `{step}`"
