using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Gateway;
using Orleans.Pipeline.Windowing;
using Orleans.Pipeline.Windowing.Tests.Reference;
using static Orleans.Pipeline.Tests.Workload;
using V1 = Orleans.Pipeline.Gateway.V1;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>
/// The gateway end to end: what is published through it gives exactly the reference windows, by query and by
/// subscription; bad input and bad keys are refused with the right status and nothing half-published; a flood is
/// shed with RESOURCE_EXHAUSTED without losing what was accepted, and the .NET gateway client rides it out.
/// </summary>
public sealed class GatewayTests
{
    private static readonly PipelineDefinition Tumbling = PipelineCluster.Pipelines.Single(p => p.Name == "tumbling");

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Publish_query_and_subscribe_round_trip_with_exactly_the_reference_windows(bool realPort)
    {
        await using var host = await GatewayHost.StartAsync(realPort: realPort);
        using var client = host.NewClient();
        var events = Events(5, WindowKind.Tumbling);
        var (expected, late) = Expected(Tumbling, events);
        var received = new ConcurrentQueue<V1.ResultBatch>();
        using var cancel = new CancellationTokenSource(Deadline);
        var subscribed = new TaskCompletionSource();
        var reading = Task.Run(async () =>
        {
            try
            {
                await foreach (var batch in client.SubscribeAsync("tumbling", ["trace", "marker"], cancellationToken: cancel.Token))
                    received.Enqueue(batch);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
            {
            }
        });
        // The live feed starts once the subscription is registered: close windows of a marker key until one arrives.
        for (var t = 1_000L; received.IsEmpty; t += 1_000)
        {
            await client.PublishAsync("tumbling", [new GatewayEvent("marker", t, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })]);
            await Task.Delay(100);
            if (t > 200_000) Assert.Fail("the subscription never received a result");
        }

        // A key outside the filter: its results must not arrive.
        await client.PublishAsync("tumbling", [new("other", 1, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 }), new("other", 500, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })]);
        foreach (var chunk in events.Chunk(13)) await client.PublishAsync("tumbling", chunk.Select(e => ToGatewayEvent("trace", e)), waitApplied: true);

        // Published waiting for each request to be applied: the query right after holds all of them.
        var queried = await client.QueryAsync("tumbling", "trace");
        Assert.Equal(events.Count, queried.AppliedEvents + queried.LateEvents);
        Assert.Equal(late, queried.LateEvents);
        string? difference = null;
        await WaitUntilAsync(() => Task.FromResult((difference = Difference(Fold(received, "trace"), expected)) is null), $"subscribed results equal the reference ({difference})");
        Assert.DoesNotContain(received, b => b.Key == "other");
        await cancel.CancelAsync();
        await reading;
    }

    [Fact]
    public async Task With_a_certificate_configured_the_gateway_speaks_tls()
    {
        using var key = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=127.0.0.1", key, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        var names = new System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder();
        names.AddIpAddress(System.Net.IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        await using var host = await GatewayHost.StartAsync(realPort: true, certificate: certificate);
        Assert.Equal("https", host.Address!.Scheme);
        using var client = host.NewClient();

        await client.PublishAsync("tumbling", [new GatewayEvent("tls", 5, new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 })], waitApplied: true);

        Assert.Equal(1, (await client.QueryAsync("tumbling", "tls")).AppliedEvents);
        using var plain = new HttpClient();
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => plain.GetAsync(new Uri($"http://127.0.0.1:{host.Address.Port}/v1/pipelines")));
    }

    [Fact]
    public async Task A_clear_text_port_speaks_http2_and_the_optional_http1_port_serves_plain_json_clients()
    {
        var http1 = $"http://127.0.0.1:{FreePorts.Next()}";
        await using var host = await GatewayHost.StartAsync(new GatewayOptions { Http1Url = http1 }, realPort: true);
        using var plain = new HttpClient();

        var pipelines = await plain.GetFromJsonAsync<JsonElement>(new Uri($"{http1}/v1/pipelines"));
        Assert.Equal(3, pipelines.GetProperty("pipelines").GetArrayLength());
        using var http2 = new HttpClient { DefaultRequestVersion = System.Net.HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http2.GetAsync(new Uri(host.Address!, "/v1/pipelines"))).StatusCode);
    }

    [Fact]
    public async Task Json_over_http_publishes_and_queries_like_grpc()
    {
        await using var host = await GatewayHost.StartAsync();
        using var http = host.Json();

        var published = await http.PostAsJsonAsync("/v1/pipelines/tumbling/events", new
        {
            requestId = "json-1",
            events = new[] { new { key = "json", timeMs = 3, fields = new { a = 2.5, b = 1 } }, new { key = "json", timeMs = 4, fields = new { a = 1.5, b = 1 } } },
        });
        Assert.Equal(System.Net.HttpStatusCode.OK, published.StatusCode);
        Assert.Equal(2, (await published.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accepted").GetInt32());
        // The same in columns: two more events of the key.
        var columns = await http.PostAsJsonAsync("/v1/pipelines/tumbling/events", new
        {
            columns = new { keys = new[] { "json", "json" }, timeMs = new[] { 5, 6 }, fields = new[] { new { name = "a", values = new[] { 3.0, 4.0 } }, new { name = "b", values = new[] { 1.0, 1.0 } } } },
            waitApplied = true,
        });
        Assert.Equal(System.Net.HttpStatusCode.OK, columns.StatusCode);
        Assert.Equal(2, (await columns.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("accepted").GetInt32());

        // Answered once applied (waitApplied): the query right after sees all four events.
        var windows = await http.GetFromJsonAsync<JsonElement>("/v1/pipelines/tumbling/keys/json");
        Assert.Equal("4", windows.GetProperty("appliedEvents").GetRawText().Trim('"'));
        var open = Assert.Single(windows.GetProperty("open").EnumerateArray());
        Assert.Equal(11.0, open.GetProperty("values").GetProperty("sum_a").GetDouble());

        var missing = await http.GetAsync("/v1/pipelines/nope/keys/json");
        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Each_bad_input_is_refused_with_invalid_argument_naming_the_event_and_field_and_nothing_of_it_is_published()
    {
        await using var host = await GatewayHost.StartAsync(new GatewayOptions { MaxEventsPerRequest = 100, BurstPerCaller = 1_000, MaxInFlightEvents = 1_000, MaxRequestBytes = 4_096 });
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        using var client = host.NewClient();
        await client.PublishAsync("tumbling", [new GatewayEvent("k", 5, new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 })]);

        static V1.Event Good(long time = 6) => new() { Key = "k", TimeMs = time, Fields = { ["a"] = 1, ["b"] = 2 } };
        async Task<RpcException> Refused(V1.PublishRequest request) => await Assert.ThrowsAsync<RpcException>(() => grpc.PublishAsync(request).ResponseAsync);

        var unknown = await Refused(new V1.PublishRequest { Pipeline = "payments", Events = { Good() } });
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("unknown pipeline 'payments'", unknown.Status.Detail, StringComparison.Ordinal);

        var cases = new (V1.Event Bad, string Message)[]
        {
            (new V1.Event { Key = "", TimeMs = 6, Fields = { ["a"] = 1, ["b"] = 2 } }, "event 1: pipeline 'tumbling': event key is missing"),
            (new V1.Event { Key = "k", TimeMs = -5, Fields = { ["a"] = 1, ["b"] = 2 } }, "event 1: pipeline 'tumbling', key 'k': event time -5 is outside"),
            (new V1.Event { Key = "k", TimeMs = 6, Fields = { ["a"] = double.NaN, ["b"] = 2 } }, "event 1: pipeline 'tumbling', key 'k': field 'a' is NaN"),
            (new V1.Event { Key = "k", TimeMs = 6, Fields = { ["a"] = double.PositiveInfinity, ["b"] = 2 } }, "event 1: pipeline 'tumbling', key 'k': field 'a' is infinite"),
            (new V1.Event { Key = "k", TimeMs = 6, Fields = { ["a"] = 1 } }, "event 1: pipeline 'tumbling', key 'k': field 'b' is missing"),
        };
        foreach (var (bad, message) in cases)
        {
            // A valid event first: the request is all or nothing.
            var error = await Refused(new V1.PublishRequest { Pipeline = "tumbling", Events = { Good(), bad } });
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.StartsWith(message, error.Status.Detail, StringComparison.Ordinal);
        }

        var tooMany = await Refused(new V1.PublishRequest { Pipeline = "tumbling", Events = { Enumerable.Range(0, 101).Select(i => Good(i)) } });
        Assert.Equal((StatusCode.InvalidArgument, true), (tooMany.StatusCode, tooMany.Status.Detail.Contains("at most 100", StringComparison.Ordinal)));
        var large = new V1.PublishRequest { Pipeline = "tumbling", RequestId = new string('r', 128) };
        for (var i = 0; i < 10; i++) large.Events.Add(new V1.Event { Key = new string('k', 500), TimeMs = 6, Fields = { ["a"] = 1, ["b"] = 2 } });
        var tooLarge = await Refused(large);
        Assert.Equal((StatusCode.InvalidArgument, true), (tooLarge.StatusCode, tooLarge.Status.Detail.Contains("at most 4096 are accepted", StringComparison.Ordinal)));

        // A last valid event: once it is applied, everything sent before it on this key is too. Only the two valid
        // single-event requests count; no event of a refused request was published.
        await client.PublishAsync("tumbling", [new GatewayEvent("k", 7, new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 })], waitApplied: true);
        Assert.Equal(2, (await client.QueryAsync("tumbling", "k")).AppliedEvents);
    }

    [Fact]
    public async Task Api_keys_authenticate_callers_and_permissions_are_per_pipeline()
    {
        var options = new GatewayOptions
        {
            ApiKeys =
            {
                ["producer"] = new ApiKeySettings { Hash = ApiKeyHash.Of("producer-key"), Publish = ["tumbling"] },
                ["analyst"] = new ApiKeySettings { Hash = ApiKeyHash.Of("analyst-key"), Read = ["*"] },
            },
        };
        await using var host = await GatewayHost.StartAsync(options);
        GatewayEvent[] one = [new("k", 5, new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 })];

        using var anonymous = host.NewClient();
        var none = await Assert.ThrowsAsync<RpcException>(() => anonymous.PublishAsync("tumbling", one));
        Assert.Equal(StatusCode.Unauthenticated, none.StatusCode);
        using var wrong = host.NewClient(new PipelineGatewayClientOptions { ApiKey = "guess" });
        Assert.Equal(StatusCode.Unauthenticated, (await Assert.ThrowsAsync<RpcException>(() => wrong.QueryAsync("tumbling", "k"))).StatusCode);

        using var producer = host.NewClient(new PipelineGatewayClientOptions { ApiKey = "producer-key" });
        await producer.PublishAsync("tumbling", one, waitApplied: true);
        var otherPipeline = await Assert.ThrowsAsync<RpcException>(() => producer.PublishAsync("session", one));
        Assert.Equal(StatusCode.PermissionDenied, otherPipeline.StatusCode);
        Assert.Contains("API key 'producer' may not publish to pipeline 'session'", otherPipeline.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => producer.QueryAsync("tumbling", "k"))).StatusCode);
        Assert.Equal(["tumbling"], (await producer.ListPipelinesAsync()).Select(p => p.Name));

        using var analyst = host.NewClient(new PipelineGatewayClientOptions { ApiKey = "analyst-key" });
        Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => analyst.PublishAsync("tumbling", one))).StatusCode);
        Assert.Equal(1, (await analyst.QueryAsync("tumbling", "k")).AppliedEvents); // the producer's event, readable by the analyst

        // Bearer works as well as x-api-key.
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        var pipelines = await grpc.ListPipelinesAsync(new V1.ListPipelinesRequest(), new Grpc.Core.Metadata { { "authorization", "Bearer analyst-key" } });
        Assert.Equal(3, pipelines.Pipelines.Count);
    }

    [Fact]
    public async Task A_flood_is_shed_with_resource_exhausted_and_every_accepted_event_is_applied_once()
    {
        var options = new GatewayOptions { EventsPerSecondPerCaller = 2_000, BurstPerCaller = 1_000, MaxEventsPerRequest = 100, MaxInFlightEvents = 1_000 };
        await using var host = await GatewayHost.StartAsync(options);
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        var accepted = 0;
        var refused = 0;
        var retryAfter = new ConcurrentBag<string>();
        var time = 0L;

        // 60 requests of 100 events at once: far beyond a burst of 1,000.
        await Task.WhenAll(Enumerable.Range(0, 60).Select(async r =>
        {
            var request = new V1.PublishRequest { Pipeline = "tumbling" };
            for (var i = 0; i < 100; i++) request.Events.Add(new V1.Event { Key = $"flood-{r % 4}", TimeMs = Interlocked.Increment(ref time), Fields = { ["a"] = 1, ["b"] = 1 } });
            try
            {
                Interlocked.Add(ref accepted, (await grpc.PublishAsync(request)).Accepted);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                Interlocked.Increment(ref refused);
                retryAfter.Add(e.Trailers.GetValue("retry-after-ms") ?? "");
            }
        }));

        Assert.True(refused > 0, "nothing was refused");
        Assert.True(accepted > 0, "nothing was accepted");
        Assert.All(retryAfter, value => Assert.True(long.TryParse(value, out var ms) && ms > 0, $"retry-after-ms '{value}'"));
        using var client = host.NewClient();
        await WaitUntilAsync(async () =>
        {
            long applied = 0;
            for (var k = 0; k < 4; k++)
            {
                var windows = await client.QueryAsync("tumbling", $"flood-{k}");
                applied += windows.AppliedEvents + windows.LateEvents;
            }

            return applied == accepted;
        }, $"the {accepted} accepted events applied");
    }

    [Fact]
    public async Task The_dotnet_gateway_client_backs_off_on_resource_exhausted_and_publishes_everything_once()
    {
        var options = new GatewayOptions { EventsPerSecondPerCaller = 2_000, BurstPerCaller = 500, MaxEventsPerRequest = 100, MaxInFlightEvents = 500 };
        await using var host = await GatewayHost.StartAsync(options);
        using var client = host.NewClient();

        var time = 0L;
        await Task.WhenAll(Enumerable.Range(0, 20).Select(r => client.PublishAsync("tumbling",
            Enumerable.Range(0, 100).Select(_ => new GatewayEvent("backoff", Interlocked.Increment(ref time), new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })))));

        Assert.True(client.ThrottledAttempts > 0, "the client was never throttled");
        await WaitUntilAsync(async () =>
        {
            var windows = await client.QueryAsync("tumbling", "backoff");
            return windows.AppliedEvents + windows.LateEvents == 2_000;
        }, "2,000 events applied once");
        Assert.Equal(0, (await client.QueryAsync("tumbling", "backoff")).DuplicateBatches);
    }

    [Fact]
    public async Task A_subscriber_that_falls_behind_the_recent_results_log_is_told_where_to_go_on_and_resumes_from_there()
    {
        await using var host = await GatewayHost.StartAsync(realPort: true, silo: o => o.RecentResults = 64);
        using var client = host.NewClient();
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        using var call = grpc.Subscribe(new V1.SubscribeRequest { Pipeline = "tumbling" });
        await Task.Delay(500); // the subscription registers; this reader then reads nothing for a while

        // Thousands of closed windows over many keys' result batches: far more than the transport's window and the log hold.
        for (var chunk = 0; chunk < 20; chunk++)
            await client.PublishAsync("tumbling", Enumerable.Range(chunk * 500, 500).Select(i => new GatewayEvent($"busy-{i % 50}", i * 20L, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })));
        long emitted = 0;
        await WaitUntilAsync(async () =>
        {
            // Over 300 batches (the log holds 64), and no more coming: the resumption below must not race new results.
            var before = emitted;
            emitted = (await host.Pipeline.ReadRecentResultsAsync("tumbling", 0, 1, TimeSpan.Zero)).Latest;
            await Task.Delay(500);
            return emitted > 300 && emitted == before;
        }, "over 300 result batches emitted, and then no more");

        var changes = new List<long>();
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            using var cancel = new CancellationTokenSource(Deadline);
            while (await call.ResponseStream.MoveNext(cancel.Token)) changes.Add(call.ResponseStream.Current.ChangeId);
        });
        Assert.Equal(StatusCode.OutOfRange, error.StatusCode);
        Assert.Contains("the subscriber fell behind by more than it holds", error.Status.Detail, StringComparison.Ordinal);
        // What it did get came in order, without a gap: positions count up by one.
        Assert.Equal(Enumerable.Range(0, changes.Count).Select(i => changes[0] + i), changes);

        // Resubscribe where told. The log may have moved on since the error was written (it was, while this reader
        // read nothing); then the resubscription is told again, with a newer position, and so on until it catches on.
        var told = error.Status.Detail;
        using var deadline = new CancellationTokenSource(Deadline);
        AsyncServerStreamingCall<V1.ResultBatch>? resumed = null;
        for (var attempt = 0; resumed is null; attempt++)
        {
            Assert.True(attempt < 5, $"never caught on: {told}");
            var resumeFrom = long.Parse(Regex.Match(told, @"after_change_id=(\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
            Assert.True(resumeFrom >= changes.DefaultIfEmpty(0).Last(), $"told to go on from {resumeFrom}, before the {changes.LastOrDefault()} it had");
            var call2 = grpc.Subscribe(new V1.SubscribeRequest { Pipeline = "tumbling", AfterChangeId = resumeFrom });
            try
            {
                Assert.True(await call2.ResponseStream.MoveNext(deadline.Token));
                Assert.Equal(resumeFrom + 1, call2.ResponseStream.Current.ChangeId);
                resumed = call2;
            }
            catch (RpcException again) when (again.StatusCode == StatusCode.OutOfRange)
            {
                told = again.Status.Detail;
                call2.Dispose();
            }
        }

        using var _ = resumed;
        // And it follows on live: a new key's window arrives on the resumed subscription.
        await client.PublishAsync("tumbling", [new GatewayEvent("after-resume", 1_000_000, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 }),
            new GatewayEvent("after-resume", 2_000_000, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })]);
        var last = resumed.ResponseStream.Current.ChangeId;
        while (await resumed.ResponseStream.MoveNext(deadline.Token))
        {
            Assert.Equal(last + 1, resumed.ResponseStream.Current.ChangeId);
            last = resumed.ResponseStream.Current.ChangeId;
            if (resumed.ResponseStream.Current.Key == "after-resume") break;
        }

        Assert.Equal("after-resume", resumed.ResponseStream.Current.Key);
    }

    [Fact]
    public async Task Resuming_from_a_position_beyond_the_recent_results_log_is_out_of_range()
    {
        await using var host = await GatewayHost.StartAsync();
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        using var call = grpc.Subscribe(new V1.SubscribeRequest { Pipeline = "tumbling", AfterChangeId = 1_000_000 });
        var error = await Assert.ThrowsAsync<RpcException>(async () => await call.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.OutOfRange, error.StatusCode);
        Assert.Contains("after_change_id 1000000 is beyond the latest result position", error.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_publish_stream_acknowledges_each_batch_in_order_and_stops_at_the_first_invalid_one()
    {
        await using var host = await GatewayHost.StartAsync();
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        using var call = grpc.PublishStream();
        for (var b = 0; b < 3; b++)
        {
            var batch = new V1.PublishRequest { Pipeline = "tumbling", RequestId = $"s{b}" };
            for (var i = 0; i < 5; i++) batch.Events.Add(new V1.Event { Key = "stream", TimeMs = b * 5 + i, Fields = { ["a"] = 1, ["b"] = 1 } });
            await call.RequestStream.WriteAsync(batch);
        }

        await call.RequestStream.WriteAsync(new V1.PublishRequest { Pipeline = "tumbling", RequestId = "bad", Events = { new V1.Event { Key = "stream", TimeMs = 20, Fields = { ["a"] = 1 } } } });
        await call.RequestStream.CompleteAsync();

        var acks = new List<string>();
        var error = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await foreach (var ack in call.ResponseStream.ReadAllAsync()) acks.Add($"{ack.RequestId}:{ack.Accepted}");
        });
        Assert.Equal(["s0:5", "s1:5", "s2:5"], acks);
        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("event 0: pipeline 'tumbling', key 'stream': field 'b' is missing", error.Status.Detail, StringComparison.Ordinal);
        using var client = host.NewClient();
        await WaitUntilAsync(async () => (await client.QueryAsync("tumbling", "stream")).AppliedEvents == 15, "the three acknowledged batches applied");
    }

    [Fact]
    public async Task Events_in_columns_give_the_reference_windows_and_bad_columns_are_refused_naming_the_column_or_event()
    {
        await using var host = await GatewayHost.StartAsync(new GatewayOptions { MaxEventsPerRequest = 1_000, BurstPerCaller = 100_000, MaxInFlightEvents = 100_000 });
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        using var client = host.NewClient();
        async Task<RpcException> Refused(V1.PublishRequest request) => await Assert.ThrowsAsync<RpcException>(() => grpc.PublishAsync(request).ResponseAsync);
        static V1.EventColumns Columns(string[] keys, long[] times, double[] a, double[] b) => new()
        {
            Keys = { keys },
            TimeMs = { times },
            Fields = { new V1.FieldColumn { Name = "a", Values = { a } }, new V1.FieldColumn { Name = "b", Values = { b } } },
        };

        var cases = new (V1.EventColumns Bad, string Message)[]
        {
            (Columns(["k", "k"], [5], [1, 1], [1, 1]), "pipeline 'tumbling': 2 keys but 1 times"),
            (Columns(["k", "k"], [5, 6], [1], [1, 1]), "pipeline 'tumbling': field 'a' has 1 values for 2 keys"),
            (new V1.EventColumns { Keys = { "k" }, TimeMs = { 5 }, Fields = { new V1.FieldColumn { Name = "a", Values = { 1 } } } }, "pipeline 'tumbling': field 'b' has no column"),
            (new V1.EventColumns { Keys = { "k" }, TimeMs = { 5 }, Fields = { new V1.FieldColumn { Name = "a", Values = { 1 } }, new V1.FieldColumn { Name = "a", Values = { 1 } } } }, "pipeline 'tumbling': field 'a' has more than one column"),
            (Columns(["k", ""], [5, 6], [1, 1], [1, 1]), "event 1: pipeline 'tumbling': event key is missing"),
            (Columns(["k", "k"], [5, -6], [1, 1], [1, 1]), "event 1: pipeline 'tumbling', key 'k': event time -6 is outside"),
            (Columns(["k", "k"], [5, 6], [1, 1], [1, double.NaN]), "event 1: pipeline 'tumbling', key 'k': field 'b' is NaN"),
        };
        foreach (var (bad, message) in cases)
        {
            var error = await Refused(new V1.PublishRequest { Pipeline = "tumbling", Columns = bad });
            Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
            Assert.StartsWith(message, error.Status.Detail, StringComparison.Ordinal);
        }

        var both = await Refused(new V1.PublishRequest
        {
            Pipeline = "tumbling",
            Events = { new V1.Event { Key = "k", TimeMs = 5, Fields = { ["a"] = 1, ["b"] = 1 } } },
            Columns = Columns(["k"], [6], [1], [1]),
        });
        Assert.Equal((StatusCode.InvalidArgument, true), (both.StatusCode, both.Status.Detail.Contains("both events and columns", StringComparison.Ordinal)));

        // One request id, the same events once as messages and once as columns (with an extra column the pipeline
        // does not read in neither): the same request, published once.
        var asEvents = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "either-way", Events = { new V1.Event { Key = "cols", TimeMs = 5, Fields = { ["b"] = 2, ["a"] = 1 } } } };
        var asColumns = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "either-way", Columns = Columns(["cols"], [5], [1], [2]) };
        Assert.Equal(1, (await grpc.PublishAsync(asEvents)).Accepted);
        Assert.Equal(1, (await grpc.PublishAsync(asColumns)).Accepted);
        var changed = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "either-way", Columns = Columns(["cols"], [5], [1], [3]) };
        Assert.Equal(StatusCode.AlreadyExists, (await Refused(changed)).StatusCode);

        // A trace through columns (the .NET gateway client sends events with one field set in columns): exactly
        // the reference windows; nothing of a refused request was applied (the trace key is its own).
        var events = Events(11, WindowKind.Tumbling);
        var (expected, late) = Expected(Tumbling, events);
        foreach (var chunk in events.Chunk(97))
        {
            var wire = chunk.Select(e => ToGatewayEvent("column-trace", e)).ToList();
            Assert.NotNull(PipelineGatewayClient.Columns(wire));
            await client.PublishAsync("tumbling", wire);
        }

        var queried = await AppliedOrLateAsync(client, "column-trace", events.Count);
        Assert.Equal(late, queried.LateEvents);
        // A key keeps its latest ClosedWindowsKept closed windows: each must be the reference's.
        var closed = Fold([new V1.ResultBatch { Key = "column-trace", Results = { queried.Closed } }], "column-trace");
        Assert.Equal(Math.Min(expected.Count, Tumbling.ClosedWindowsKept), closed.Count);
        Assert.Null(Difference(closed, expected.Where(e => closed.ContainsKey(e.Key)).ToDictionary(e => e.Key, e => e.Value)));
        Assert.Equal(1, (await client.QueryAsync("tumbling", "cols")).AppliedEvents);
    }

    [Fact]
    public async Task A_retry_with_the_same_request_id_publishes_nothing_twice()
    {
        await using var host = await GatewayHost.StartAsync();
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        var request = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "once", Events = { new V1.Event { Key = "retry", TimeMs = 5, Fields = { ["a"] = 1, ["b"] = 1 } } } };

        // Two at once (a client that timed out and retried while the first was still running), then one more later.
        var concurrent = await Task.WhenAll(grpc.PublishAsync(request).ResponseAsync, grpc.PublishAsync(request).ResponseAsync);
        var again = await grpc.PublishAsync(request);
        Assert.Equal((1, 1, 1), (concurrent[0].Accepted, concurrent[1].Accepted, again.Accepted));

        // A later event of the same key: once it is applied, so is everything sent before it.
        using var client = host.NewClient();
        await client.PublishAsync("tumbling", [new GatewayEvent("retry", 6, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })], waitApplied: true);
        Assert.Equal(2, (await client.QueryAsync("tumbling", "retry")).AppliedEvents);
    }

    [Fact]
    public async Task A_request_id_reused_for_different_events_is_refused_with_already_exists_and_the_first_request_stands()
    {
        await using var host = await GatewayHost.StartAsync();
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        var first = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "reused", Events = { new V1.Event { Key = "reuse", TimeMs = 5, Fields = { ["a"] = 1, ["b"] = 1 } } } };
        var other = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "reused", Events = { new V1.Event { Key = "reuse", TimeMs = 6, Fields = { ["a"] = 2, ["b"] = 1 } } } };
        Assert.Equal(1, (await grpc.PublishAsync(first)).Accepted);

        var error = await Assert.ThrowsAsync<RpcException>(async () => await grpc.PublishAsync(other));
        Assert.Equal(StatusCode.AlreadyExists, error.StatusCode);
        Assert.Contains("request_id 'reused' was already used for a request with different content", error.Status.Detail, StringComparison.Ordinal);
        // The same content again (fields in another order): the retry it is, answered without publishing.
        var reordered = new V1.PublishRequest { Pipeline = "tumbling", RequestId = "reused", Events = { new V1.Event { Key = "reuse", TimeMs = 5, Fields = { ["b"] = 1, ["a"] = 1 } } } };
        Assert.Equal(1, (await grpc.PublishAsync(reordered)).Accepted);

        using var client = host.NewClient();
        await client.PublishAsync("tumbling", [new GatewayEvent("reuse", 7, new Dictionary<string, double> { ["a"] = 1, ["b"] = 1 })], waitApplied: true);
        var windows = await client.QueryAsync("tumbling", "reuse");
        Assert.Equal(2, windows.AppliedEvents);
    }

    [Fact]
    public async Task A_caller_learns_nothing_of_pipelines_it_may_not_use_and_its_reads_and_subscriptions_are_limited()
    {
        var options = new GatewayOptions
        {
            ReadsPerSecondPerCaller = 5,
            MaxSubscriptionsPerCaller = 1,
            EnableReflection = false,
            ApiKeys =
            {
                ["producer"] = new ApiKeySettings { Hash = ApiKeyHash.Of("producer-key"), Publish = ["tumbling"] },
                ["analyst"] = new ApiKeySettings { Hash = ApiKeyHash.Of("analyst-key"), Read = ["tumbling", "retired"] },
                ["watcher"] = new ApiKeySettings { Hash = ApiKeyHash.Of("watcher-key"), Read = ["tumbling"] },
            },
        };
        await using var host = await GatewayHost.StartAsync(options, realPort: true);
        GatewayEvent[] one = [new("k", 5, new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 })];

        // Permission first: whether a pipeline exists is not revealed to a caller that may not use the name.
        using var producer = host.NewClient(new PipelineGatewayClientOptions { ApiKey = "producer-key" });
        Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => producer.PublishAsync("no-such-pipeline", one))).StatusCode);
        using var analyst = host.NewClient(new PipelineGatewayClientOptions { ApiKey = "analyst-key" });
        Assert.Equal(StatusCode.PermissionDenied, (await Assert.ThrowsAsync<RpcException>(() => analyst.QueryAsync("session", "k"))).StatusCode);
        // A name it may use that does not exist: NOT_FOUND, listing only what it may read.
        var unknown = await Assert.ThrowsAsync<RpcException>(() => analyst.QueryAsync("retired", "k"));
        Assert.Equal(StatusCode.NotFound, unknown.StatusCode);
        Assert.Contains("(known: tumbling)", unknown.Status.Detail, StringComparison.Ordinal);
        var longKey = await Assert.ThrowsAsync<RpcException>(() => analyst.QueryAsync("tumbling", new string('k', PipelineNames.MaxKeyLength + 1)));
        Assert.Equal(StatusCode.InvalidArgument, longKey.StatusCode);

        // One subscription per caller here: the second is refused while the first is open.
        var grpc = new V1.PipelineGateway.PipelineGatewayClient(host.Channel);
        var watcher = new Grpc.Core.Metadata { { "x-api-key", "watcher-key" } };
        using var first = grpc.Subscribe(new V1.SubscribeRequest { Pipeline = "tumbling" }, watcher);
        await WaitUntilAsync(async () =>
        {
            using var second = grpc.Subscribe(new V1.SubscribeRequest { Pipeline = "tumbling" }, watcher);
            try
            {
                using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await second.ResponseStream.MoveNext(cancel.Token);
                return false;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                Assert.Contains("already has 1 subscriptions open", e.Status.Detail, StringComparison.Ordinal);
                return true;
            }
            catch (RpcException)
            {
                return false; // the first has not registered yet
            }
        }, "a second subscription of the same caller refused");

        // Reads beyond the caller's rate (5/s, burst 10) are refused with a retry-after.
        var refused = 0;
        for (var i = 0; i < 40; i++)
        {
            try
            {
                await analyst.QueryAsync("tumbling", "k");
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                Assert.NotNull(e.Trailers.GetValue("retry-after-ms"));
                refused++;
            }
        }

        Assert.True(refused > 0, "40 queries at once were all admitted at 5 reads/s");

        // Reflection is off.
        using var reflection = new ServerReflection.ServerReflectionClient(host.Channel).ServerReflectionInfo();
        // Read the status without writing first: an unimplemented method ends the call at once, and a write racing that
        // end fails as Cancelled rather than with the call's status.
        var off = await Assert.ThrowsAsync<RpcException>(() => reflection.ResponseStream.MoveNext(CancellationToken.None));
        Assert.Equal(StatusCode.Unimplemented, off.StatusCode);
    }

    [Fact]
    public async Task Health_and_reflection_are_served()
    {
        await using var host = await GatewayHost.StartAsync();

        var health = await new Health.HealthClient(host.Channel).CheckAsync(new HealthCheckRequest());
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);

        using var reflection = new ServerReflection.ServerReflectionClient(host.Channel).ServerReflectionInfo();
        await reflection.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await reflection.RequestStream.CompleteAsync();
        Assert.True(await reflection.ResponseStream.MoveNext());
        Assert.Contains("orleans.pipeline.v1.PipelineGateway", reflection.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name));
    }

    /// <summary>The subscribed results of a key folded as a consumer holds them.</summary>
    /// <summary>The key's windows once it has applied (or found late) <paramref name="count"/> events.</summary>
    private static async Task<V1.KeyWindows> AppliedOrLateAsync(PipelineGatewayClient client, string key, int count)
    {
        await WaitUntilAsync(async () =>
        {
            var windows = await client.QueryAsync("tumbling", key);
            return windows.AppliedEvents + windows.LateEvents == count;
        }, $"every event of '{key}' applied");
        return await client.QueryAsync("tumbling", key);
    }

    private static Dictionary<(long, long), WindowResult> Fold(IEnumerable<V1.ResultBatch> batches, string key)
    {
        var outputs = Tumbling.OutputNames();
        var view = new Dictionary<(long, long), WindowResult>();
        foreach (var r in batches.Where(b => b.Key == key).SelectMany(b => b.Results)) WireView.Apply(view, r, outputs);
        return view;
    }
}
