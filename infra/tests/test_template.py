"""Checks the SAM template holds the contracts of design.md and the Rust code.

Run: .venv/bin/python -m unittest discover -s infra/tests   (scripts/test runs it)
"""
import json
import pathlib
import re
import unittest

from cfnlint.decode import cfn_yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = cfn_yaml.load(str(ROOT / "infra" / "template.yaml"))
RESOURCES = TEMPLATE["Resources"]

# The retry schedule in shared/src/dispatch.rs (DispatchSettings::default): nine waits.
RETRY_WAITS = 9


def of_type(kind):
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


def functions():
    return of_type("AWS::Serverless::Function")


def routes():
    found = set()
    for name, fn in functions().items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                found.add((event["Properties"]["Method"], event["Properties"]["Path"], name))
    return found


def route_events():
    for name, fn in functions().items():
        for event in fn["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                yield name, event["Properties"]


class Routes(unittest.TestCase):
    def test_exactly_the_three_carrier_routes_their_probes_and_the_admin_api(self):
        expected = {("ANY", "/admin/{proxy+}", "AdminApiFunction")}
        for path, fn in [
            ("/rms/in/api/clickpost/notify", "ClickpostNotifyFunction"),
            ("/rms/in/api/st/notify", "ShiprocketNotifyFunction"),
            ("/rms/in/api/shipway/notify", "ShipwayNotifyFunction"),
        ]:
            expected |= {("POST", path, fn), ("GET", path, fn)}
        self.assertEqual(routes(), expected)

    def test_the_admin_route_is_iam_authorised_and_the_carrier_routes_are_not(self):
        api_auth = RESOURCES["HttpApi"]["Properties"]["Auth"]
        self.assertTrue(api_auth["EnableIamAuthorizer"])
        # No default authorizer: it would close the carrier routes too.
        self.assertNotIn("DefaultAuthorizer", api_auth)
        for name, props in route_events():
            authorizer = props.get("Auth", {}).get("Authorizer")
            if props["Path"].startswith("/admin/"):
                self.assertEqual(authorizer, "AWS_IAM", name)
            else:
                self.assertTrue(props["Path"].startswith("/rms/in/api/"), name)
                self.assertIn(authorizer, (None, "NONE"), name)

    def test_the_admin_api_url_is_an_output(self):
        url = json.dumps(TEMPLATE["Outputs"]["AdminApiUrl"]["Value"])
        self.assertIn("${Stage}/admin", url)
        stage = RESOURCES["AdminApiFunction"]["Properties"]["Environment"]["Variables"]["API_STAGE"]
        self.assertEqual(stage, {"Ref": "Stage"})

    def test_no_shiprocket_url_part_holds_a_banned_substring(self):
        banned = ("shiprocket", "kartrocket", "sr", "kr")
        for method, path, fn in routes():
            if fn == "ShiprocketNotifyFunction":
                for word in banned:
                    self.assertNotIn(word, path.lower())
        stage = TEMPLATE["Parameters"]["Stage"]
        self.assertNotRegex(stage["Default"], "sr|kr")
        pattern = re.compile(stage["AllowedPattern"])
        self.assertIsNone(pattern.match("sr-live"))
        self.assertIsNone(pattern.match("ukraine"))
        self.assertIsNotNone(pattern.match("live"))
        url = TEMPLATE["Outputs"]["ShiprocketNotifyUrl"]["Value"]
        self.assertIn("/rms/in/api/st/notify", json.dumps(url))

    def test_the_api_is_throttled_and_access_logged(self):
        api = RESOURCES["HttpApi"]["Properties"]
        self.assertIn("ThrottlingRateLimit", api["DefaultRouteSettings"])
        self.assertIn("ThrottlingBurstLimit", api["DefaultRouteSettings"])
        self.assertIn("DestinationArn", api["AccessLogSettings"])


class Queues(unittest.TestCase):
    def test_the_redrive_policy_allows_every_scheduled_retry(self):
        queue = RESOURCES["EventsQueue"]["Properties"]
        self.assertEqual(queue["RedrivePolicy"]["maxReceiveCount"], {"Ref": "MaxDeliveryAttempts"})
        self.assertEqual(TEMPLATE["Parameters"]["MaxDeliveryAttempts"]["Default"], RETRY_WAITS + 1)
        self.assertEqual(
            queue["RedrivePolicy"]["deadLetterTargetArn"], {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}
        )

    def test_the_dispatcher_dead_letters_at_the_queues_own_limit(self):
        variables = RESOURCES["DispatcherFunction"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(variables["MAX_ATTEMPTS"], {"Ref": "MaxDeliveryAttempts"})

    def test_retention_outlasts_the_whole_schedule(self):
        schedule_seconds = 30 + 120 + 600 + 1800 + 3600 + 7200 + 14400 + 28800 + 43200
        for name in ("EventsQueue", "EventsDeadLetterQueue"):
            self.assertGreater(RESOURCES[name]["Properties"]["MessageRetentionPeriod"], 2 * schedule_seconds)
            self.assertIn("KmsMasterKeyId", RESOURCES[name]["Properties"])

    def test_visibility_is_at_least_six_times_the_dispatcher_timeout(self):
        visibility = RESOURCES["EventsQueue"]["Properties"]["VisibilityTimeout"]
        timeout = RESOURCES["DispatcherFunction"]["Properties"]["Timeout"]
        self.assertGreaterEqual(visibility, 6 * timeout)

    def test_the_dispatcher_reports_batch_item_failures_with_bounded_concurrency(self):
        event = RESOURCES["DispatcherFunction"]["Properties"]["Events"]["Queue"]
        self.assertEqual(event["Type"], "SQS")
        self.assertEqual(event["Properties"]["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertGreater(event["Properties"]["ScalingConfig"]["MaximumConcurrency"], 1)
        self.assertIn("BatchSize", event["Properties"])
        self.assertIn("MaximumBatchingWindowInSeconds", event["Properties"])


class Tables(unittest.TestCase):
    def test_tables_have_the_key_schema_the_code_uses(self):
        for name in ("ConfigTable", "EventsTable"):
            props = RESOURCES[name]["Properties"]
            self.assertEqual(props["BillingMode"], "PAY_PER_REQUEST")
            self.assertEqual(
                props["KeySchema"],
                [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            )
            self.assertTrue(props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"])
            self.assertEqual(props["SSESpecification"]["SSEType"], "KMS")
            self.assertEqual(props["SSESpecification"]["KMSMasterKeyId"], {"Ref": "DataKey"})

    def test_the_delivery_log_index_is_the_one_the_code_queries(self):
        props = RESOURCES["EventsTable"]["Properties"]
        (index,) = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == "by_tenant_day"]
        self.assertEqual(
            index["KeySchema"],
            [{"AttributeName": "tenant_day", "KeyType": "HASH"}, {"AttributeName": "at_key", "KeyType": "RANGE"}],
        )
        self.assertEqual(index["Projection"], {"ProjectionType": "ALL"})
        defined = {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]}
        self.assertLessEqual({("tenant_day", "S"), ("at_key", "S")}, defined)
        source = (ROOT / "shared" / "src" / "adapters" / "dynamodb.rs").read_text()
        self.assertIn('BY_TENANT_DAY: &str = "by_tenant_day"', source)

    def test_the_quiet_shipments_index_is_the_one_the_reconciler_queries(self):
        props = RESOURCES["EventsTable"]["Properties"]
        self.assertEqual(
            sorted(i["IndexName"] for i in props["GlobalSecondaryIndexes"]), ["by_quiet", "by_tenant_day"]
        )
        (index,) = [i for i in props["GlobalSecondaryIndexes"] if i["IndexName"] == "by_quiet"]
        self.assertEqual(
            index["KeySchema"],
            [{"AttributeName": "open", "KeyType": "HASH"}, {"AttributeName": "heard_at", "KeyType": "RANGE"}],
        )
        self.assertEqual(index["Projection"], {"ProjectionType": "ALL"})
        defined = {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]}
        self.assertLessEqual({("open", "S"), ("heard_at", "N")}, defined)
        source = (ROOT / "shared" / "src" / "adapters" / "dynamodb.rs").read_text()
        self.assertIn('BY_QUIET: &str = "by_quiet"', source)
        self.assertIn('OPEN: &str = "open"', source)

    def test_the_events_table_expires_items_on_expires_at(self):
        ttl = RESOURCES["EventsTable"]["Properties"]["TimeToLiveSpecification"]
        self.assertEqual(ttl, {"AttributeName": "expires_at", "Enabled": True})


class Functions(unittest.TestCase):
    def test_every_function_is_arm64_al2023_bootstrap_with_json_logs_and_tracing(self):
        glob = TEMPLATE["Globals"]["Function"]
        self.assertEqual(glob["Runtime"], "provided.al2023")
        self.assertEqual(glob["Architectures"], ["arm64"])
        self.assertEqual(glob["Handler"], "bootstrap")
        self.assertEqual(glob["Tracing"], "Active")
        self.assertEqual(glob["LoggingConfig"]["LogFormat"], "JSON")
        for name, fn in functions().items():
            props = fn["Properties"]
            self.assertIn("MemorySize", props, name)
            self.assertIn("Timeout", props, name)
            crate = re.sub(r"(?<!^)(?=[A-Z])", "-", name.removesuffix("Function")).lower()
            self.assertEqual(props["CodeUri"], f"../target/lambda/{crate}/bootstrap.zip", name)
            self.assertTrue((ROOT / "functions" / crate / "Cargo.toml").exists(), name)

    def test_every_function_has_a_log_group_with_retention(self):
        groups = [g["Properties"] for g in of_type("AWS::Logs::LogGroup").values()]
        named = {json.dumps(g.get("LogGroupName")) for g in groups}
        for name in functions():
            self.assertIn(json.dumps({"Fn::Sub": f"/aws/lambda/${{{name}}}"}), named)
        for g in groups:
            self.assertIn("RetentionInDays", g)

    def test_no_function_policy_grants_a_wildcard_action_or_resource(self):
        policies = of_type("AWS::IAM::ManagedPolicy")
        for name, fn in functions().items():
            for ref in fn["Properties"]["Policies"]:
                self.assertIsInstance(ref, dict, f"{name}: only the stack's own policies")
                policy = policies[ref["Ref"]]
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    for action in actions:
                        self.assertNotIn("*", action, f"{name}: {action}")
                    self.assertNotEqual(statement["Resource"], "*", name)

    def test_the_dispatcher_can_query_an_events_attempts_but_not_an_index(self):
        # Whether a copy is the one its event's claim names, and the event was delivered, is one
        # Query of the claim and its attempts in the events table
        # (shared/src/adapters/dynamodb.rs, DynamoDeliveryLog::standing).
        policy = of_type("AWS::IAM::ManagedPolicy")["DispatcherPolicy"]
        queried = [
            s["Resource"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if "dynamodb:Query" in s["Action"]
        ]
        self.assertEqual(queried, [{"Fn::GetAtt": ["EventsTable", "Arn"]}])

    def test_the_dispatcher_writes_only_circuit_items_of_the_config_table(self):
        policy = of_type("AWS::IAM::ManagedPolicy")["DispatcherPolicy"]
        config_table = {"Fn::GetAtt": ["ConfigTable", "Arn"]}
        writes = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Resource"] != config_table or not writes & set(statement["Action"]):
                continue
            self.assertEqual(
                statement.get("Condition"),
                {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["CIRCUIT#*"]}},
                statement["Sid"],
            )


class Reconciler(unittest.TestCase):
    def test_the_reconciler_runs_every_15_minutes_and_reads_only_the_quiet_index(self):
        fn = RESOURCES["ReconcileFunction"]["Properties"]
        (event,) = fn["Events"].values()
        self.assertEqual(event["Type"], "ScheduleV2")
        self.assertEqual(event["Properties"]["ScheduleExpression"], "rate(15 minutes)")
        self.assertLess(fn["Timeout"], 15 * 60, "runs never overlap")
        policy = of_type("AWS::IAM::ManagedPolicy")["ReconcilePolicy"]
        queried = [
            s["Resource"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if "dynamodb:Query" in s["Action"]
        ]
        self.assertEqual(queried, [{"Fn::Sub": "${EventsTable.Arn}/index/by_quiet"}])


class Alarms(unittest.TestCase):
    def test_each_alarm_of_the_runbook_exists_and_notifies_the_topic(self):
        alarms = of_type("AWS::CloudWatch::Alarm")
        self.assertEqual(
            set(alarms),
            {
                "DeadLetterQueueNotEmptyAlarm",
                "OldestEventAgeAlarm",
                "IngestServerErrorRateAlarm",
                "DispatcherErrorsAlarm",
                "ClientAuthFailedAlarm",
                "ClickpostSilentAlarm",
                "ShiprocketSilentAlarm",
                "ShipwaySilentAlarm",
            },
        )
        for alarm in alarms.values():
            self.assertEqual(alarm["Properties"]["AlarmActions"], [{"Ref": "AlarmTopic"}])

    def test_each_carrier_has_a_silence_alarm_on_received_where_no_data_is_silence(self):
        for carrier in ("Clickpost", "Shiprocket", "Shipway"):
            alarm = RESOURCES[f"{carrier}SilentAlarm"]
            props = alarm["Properties"]
            self.assertEqual(alarm["Condition"], f"Watch{carrier}")
            self.assertEqual((props["Namespace"], props["MetricName"]), ("RMSNotify", "Received"))
            # The ingest metric's one dimension set is [Carrier], valued as Carrier::as_str.
            self.assertEqual(props["Dimensions"], [{"Name": "Carrier", "Value": carrier.lower()}])
            self.assertEqual(props["TreatMissingData"], "breaching")
            self.assertEqual((props["Statistic"], props["Period"]), ("Sum", 3600))
            self.assertEqual(props["ComparisonOperator"], "LessThanThreshold")
            self.assertEqual(props["EvaluationPeriods"], {"Ref": f"{carrier}SilentHours"})
            hours = TEMPLATE["Parameters"][f"{carrier}SilentHours"]
            self.assertEqual((hours["Default"], hours["MinValue"]), (3, 0))
            self.assertIn(f"Runbook: README, \"Carrier silent\"", props["AlarmDescription"])

    def test_the_dashboard_shows_the_design_metrics(self):
        body = json.dumps(RESOURCES["Dashboard"]["Properties"]["DashboardBody"])
        for metric in (
            "Received", "Accepted", "Duplicate", "Rejected", "UnmappedStatus", "Delivered",
            "DeliveryFailed", "DeadLettered", "Superseded", "DeliveryLatencyMs", "EndToEndLatencyMs",
        ):
            self.assertIn(f'\\"{metric}\\"', body, metric)


if __name__ == "__main__":
    unittest.main()
