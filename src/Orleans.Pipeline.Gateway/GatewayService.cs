using System.Diagnostics;
using Grpc.Core;
using Microsoft.Extensions.Logging;
using Orleans.Pipeline.Client;
using Orleans.Pipeline.Storage;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Gateway;

/// <summary>
/// The gRPC (and JSON) gateway over a <see cref="PipelineClient"/>: authenticates, authorizes per pipeline, validates
/// every event before anything is published (a request is all or nothing), admits requests through the rate and
/// in-flight limits, and answers only when every batch is stored. Retries with the same request id reuse the
/// batches' producer sequences, so the keys apply them once.
/// </summary>
internal sealed partial class GatewayService(
    PipelineClient client,
    GatewayOptions options,
    GatewayAccess access,
    GatewayLimits limits,
    RecentRequests recent,
    ILogger<GatewayService> logger,
    IResultChangeReader? resultReader = null,
    IRequestLedger? sharedIds = null) : V1.PipelineGateway.PipelineGatewayBase
{
    public override async Task<V1.ListPipelinesResponse> ListPipelines(V1.ListPipelinesRequest request, ServerCallContext context)
    {
        var caller = access.Authenticate(context);
        var response = new V1.ListPipelinesResponse();
        foreach (var pipeline in (await client.GetPipelinesAsync()).Values.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            if (caller.May(Access.Publish, pipeline.Name) || caller.May(Access.Read, pipeline.Name)) response.Pipelines.Add(GatewayMapping.ToInfo(pipeline));
        }

        return response;
    }

    public override async Task<V1.PublishResponse> Publish(V1.PublishRequest request, ServerCallContext context)
    {
        var caller = access.Authenticate(context);
        return await PublishOneAsync(caller, request, context);
    }

    public override async Task PublishStream(IAsyncStreamReader<V1.PublishRequest> requestStream, IServerStreamWriter<V1.PublishResponse> responseStream, ServerCallContext context)
    {
        var caller = access.Authenticate(context);
        await foreach (var request in requestStream.ReadAllAsync(context.CancellationToken))
            await responseStream.WriteAsync(await PublishOneAsync(caller, request, context));
    }

    public override async Task<V1.KeyWindows> QueryKey(V1.QueryKeyRequest request, ServerCallContext context)
    {
        var caller = access.Authenticate(context);
        var pipeline = await KnownPipelineAsync(caller, Access.Read, request.Pipeline);
        if (string.IsNullOrEmpty(request.Key)) throw Invalid("key is missing");
        if (request.Key.Length > PipelineNames.MaxKeyLength) throw Invalid($"key is longer than {PipelineNames.MaxKeyLength} characters");
        limits.AdmitRead(caller.Name, context);
        var windows = await client.QueryAsync(pipeline.Name, request.Key);
        var outputs = pipeline.OutputNames();
        var response = new V1.KeyWindows
        {
            Watermark = windows.Watermark,
            AppliedEvents = windows.AppliedEvents,
            LateEvents = windows.LateEvents,
            DuplicateBatches = windows.DuplicateBatches,
        };
        response.Open.AddRange(windows.Open.Select(r => GatewayMapping.ToWire(r, outputs)));
        response.Closed.AddRange(windows.Closed.Select(r => GatewayMapping.ToWire(r, outputs)));
        return response;
    }

    public override async Task Subscribe(V1.SubscribeRequest request, IServerStreamWriter<V1.ResultBatch> responseStream, ServerCallContext context)
    {
        var caller = access.Authenticate(context);
        var pipeline = await KnownPipelineAsync(caller, Access.Read, request.Pipeline);
        if (request.Keys.Count > MaxSubscribedKeys) throw Invalid($"the subscription names {request.Keys.Count} keys; at most {MaxSubscribedKeys} (or none, for all keys)");
        if (request.Keys.FirstOrDefault(k => k.Length is 0 or > PipelineNames.MaxKeyLength) is { } badKey)
            throw Invalid($"key '{(badKey.Length > 40 ? badKey[..40] + "…" : badKey)}' is empty or longer than {PipelineNames.MaxKeyLength} characters");
        limits.AdmitRead(caller.Name, context);
        using var slot = limits.AdmitSubscriber(caller.Name, context);
        var keys = request.Keys.ToHashSet(StringComparer.Ordinal);
        if (resultReader is not null)
        {
            var outputs = pipeline.OutputNames();
            // Cluster mode: from the results table, in change order, at the subscriber's pace; every batch carries
            // the change id to resume from.
            var after = request.HasAfterChangeId ? request.AfterChangeId : await resultReader.LatestChangeAsync(pipeline.Name, context.CancellationToken);
            await ResumeAsync(pipeline.Name, outputs, after, keys, responseStream, context.CancellationToken);
            return;
        }

        await FollowRecentResultsAsync(pipeline, keys, request.HasAfterChangeId ? request.AfterChangeId : null, responseStream, context.CancellationToken);
    }

    /// <summary>
    /// Embedded mode: follows the silo's recent-results log at the subscriber's pace (it pushes back instead of
    /// buffering); every batch carries its position as change id. A subscriber that falls further behind than the
    /// log reaches, or resumes from a position it no longer holds, is told (OUT_OF_RANGE) what it missed and where it
    /// can go on from.
    /// </summary>
    private async Task FollowRecentResultsAsync(PipelineDefinition pipeline, HashSet<string> keys, long? afterChangeId, IServerStreamWriter<V1.ResultBatch> responseStream, CancellationToken cancellationToken)
    {
        var outputs = pipeline.OutputNames();
        var fields = pipeline.Windowing.Fields;
        var first = await client.ReadRecentResultsAsync(pipeline.Name, long.MaxValue - 1, 1, TimeSpan.Zero);
        var origin = first.Origin;
        var after = afterChangeId ?? first.Latest;
        if (after < 0) throw Invalid("after_change_id must not be negative");
        if (after > first.Latest)
        {
            throw new RpcException(new Status(StatusCode.OutOfRange,
                $"after_change_id {after} is beyond the latest result position {first.Latest} of the recent-results log (the silo may have restarted since); subscribe without after_change_id to follow from now, and query the keys for their windows"));
        }

        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var page = await client.ReadRecentResultsAsync(pipeline.Name, after, 1_024, TimeSpan.FromSeconds(2));
                if (page.Origin != origin)
                {
                    throw new RpcException(new Status(StatusCode.Unavailable,
                        "the silo serving this pipeline's results restarted; its result positions start again: subscribe again, and query the keys for what happened in between"));
                }

                if (page.Oldest > after + 1)
                {
                    throw new RpcException(new Status(StatusCode.OutOfRange,
                        $"results after change {after} are no longer in the recent-results log (it holds changes {page.Oldest}-{page.Latest}; the subscriber fell behind by more than it holds): " +
                        $"resubscribe with after_change_id={page.Oldest - 1} to go on from the oldest it holds, and query the keys for the windows in between"));
                }

                for (var i = 0; i < page.Batches.Length; i++)
                {
                    var batch = page.Batches[i];
                    if (keys.Count > 0 && !keys.Contains(batch.Key)) continue;
                    var wire = new V1.ResultBatch { Pipeline = batch.Pipeline, Key = batch.Key, ChangeId = page.FirstPosition + i };
                    wire.Results.AddRange(batch.Results.Select(r => GatewayMapping.ToWire(r, outputs)));
                    wire.LateEvents.AddRange(batch.LateEvents.Select(l => GatewayMapping.ToWire(l, fields)));
                    await responseStream.WriteAsync(wire, cancellationToken);
                }

                after = page.FirstPosition + page.Batches.Length - 1;
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Claims a request id in the cluster's ledger. While another gateway is publishing the same request, waits for it
    /// (up to the publish timeout); a claim left unfinished for twice the publish timeout (its gateway died) is taken
    /// over and published again.
    /// </summary>
    private async Task<(ClaimOutcome Outcome, RequestTag PublishAs)> ClaimSharedAsync(string caller, string requestId, byte[] hash, int events, RequestTag mine, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + options.PublishTimeout;
        while (true)
        {
            var outcome = await sharedIds!.ClaimAsync(caller, requestId, hash, events, mine, cancellationToken);
            if (outcome != ClaimOutcome.InProgress) return (outcome, mine);
            if (await sharedIds.TakeOverAsync(caller, requestId, options.PublishTimeout * 2, cancellationToken) is { } takeOver)
            {
                // Published again under the tag it was first published under: partitions that stored the first
                // gateway's share drop it from this copy.
                LogRequestTakenOver(requestId);
                return (ClaimOutcome.Claimed, takeOver.Origin ?? mine);
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new RpcException(new Status(StatusCode.Unavailable,
                    $"request_id '{requestId}' is still being published by another gateway; retry with the same request_id to wait for it (nothing is published twice)"));
            }

            await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
        }
    }

    /// <summary>
    /// Marks a stored request done, then closes its tag: at once, or after <see cref="TakenOverRetention"/> when it
    /// may still be published again (another gateway took it over, or it could not be marked done).
    /// </summary>
    private async Task CompleteSharedAsync(IRequestLedger shared, string caller, string requestId, RequestTag? ownTag)
    {
        var again = true;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                again = await shared.CompleteAsync(caller, requestId, CancellationToken.None);
                break;
            }
            catch (Exception e) when (e is System.Data.Common.DbException or TimeoutException)
            {
                if (attempt == 4) LogRequestNotMarked(requestId);
                else await Task.Delay(TimeSpan.FromMilliseconds(200 << attempt));
            }
        }

        if (ownTag is { } tag) CloseLater(tag, again);
    }

    /// <summary>
    /// How long a request's tag stays open after it may have been published again elsewhere: the other copy reaches the
    /// partitions well within it, and they must still know the request when it does.
    /// </summary>
    internal static readonly TimeSpan TakenOverRetention = TimeSpan.FromMinutes(10);

    private void CloseLater(RequestTag tag, bool mayComeAgain)
    {
        if (!mayComeAgain)
        {
            client.CloseRequest(tag);
            return;
        }

        _ = Task.Delay(TakenOverRetention).ContinueWith(_ => client.CloseRequest(tag), TaskScheduler.Default);
    }

    private static RpcException AlreadyUsed(string requestId) => new(new Status(StatusCode.AlreadyExists,
        $"request_id '{requestId}' was already used for a request with different content; a retry must resend exactly the same events, and new events need a new request_id"));

    /// <summary>Cluster mode: every stored result after the given change, then new ones as they are stored.</summary>
    private async Task ResumeAsync(string pipeline, IReadOnlyList<string> outputs, long after, HashSet<string> keys, IServerStreamWriter<V1.ResultBatch> responseStream, CancellationToken cancellationToken)
    {
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var changes = await resultReader!.ReadChangesAsync(pipeline, outputs, after, keys, 1_000, cancellationToken);
                foreach (var change in changes)
                {
                    var wire = new V1.ResultBatch { Pipeline = pipeline, Key = change.Key, ChangeId = change.ChangeId };
                    wire.Results.Add(GatewayMapping.ToWire(change.Result, outputs));
                    await responseStream.WriteAsync(wire, cancellationToken);
                    after = change.ChangeId;
                }

                if (changes.Count < 1_000) await Task.Delay(TimeSpan.FromMilliseconds(100), cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    private async Task<V1.PublishResponse> PublishOneAsync(Caller caller, V1.PublishRequest request, ServerCallContext context)
    {
        if (request.RequestId.Length > 128) throw Invalid("request_id is longer than 128 characters");
        if (request.Events.Count > 0 && request.Columns is not null)
            throw Invalid("the request has both events and columns; send the events one way or the other");
        var count = request.Columns?.Keys.Count ?? request.Events.Count;
        if (count == 0) throw Invalid("the request has no events");
        if (count > options.MaxEventsPerRequest)
            throw Invalid($"the request has {count} events; at most {options.MaxEventsPerRequest} are accepted per request");
        var size = request.CalculateSize();
        if (size > options.MaxRequestBytes) throw Invalid($"the request is {size} bytes; at most {options.MaxRequestBytes} are accepted");
        var pipeline = await KnownPipelineAsync(caller, Access.Publish, request.Pipeline);
        if (pipeline.Input is { } input)
            throw Invalid($"pipeline '{pipeline.Name}' reads the results of pipeline '{input.Pipeline}' and takes no events; publish to '{input.Pipeline}'");

        var id = request.RequestId.Length > 0 ? $"{caller.Name}\n{request.RequestId}" : null;
        Task publish;
        TaskCompletionSource? claim = null;
        RecentRequests.Entry? mine = null;
        byte[]? hash = null;
        if (id is not null)
        {
            // Claim the id (bound to the request's content) before publishing, so that a concurrent retry waits for
            // this publish instead of racing it, and the same id with other content is refused.
            hash = RequestContent.Hash(request);
            claim = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            mine = new RecentRequests.Entry(hash, claim.Task);
            var kept = recent.Remember(id, mine);
            if (!ReferenceEquals(kept, mine))
            {
                if (!kept.Hash.AsSpan().SequenceEqual(hash)) throw AlreadyUsed(request.RequestId);
                mine = null;
            }

            publish = kept.Publish;
        }
        else
        {
            publish = Task.CompletedTask;
        }

        if (id is null || mine is not null)
        {
            var sharedClaim = false;
            RequestTag? ownTag = null;
            RequestTag? publishAs = null;
            try
            {
                ValidatedEvents validated;
                try
                {
                    validated = request.Columns is { } columns
                        ? await client.ValidateColumnsAsync(pipeline.Name, columns.Keys, columns.TimeMs, columns.Fields.Select(c => (c.Name, (IReadOnlyList<double>)c.Values)).ToList())
                        : await client.ValidateAsync(pipeline.Name, request.Events.Select(GatewayMapping.FromWire).ToList());
                }
                catch (InvalidEventException e)
                {
                    throw Invalid(e.Message);
                }

                if (sharedIds is not null && id is not null)
                {
                    // Cluster mode: a retry may reach another gateway; the ids live in PostgreSQL.
                    // Tagged, so that a gateway taking the request over if this one dies part way publishes it again
                    // under the same tag and the partitions that stored this one's share drop it.
                    ownTag = client.OpenRequest();
                    var (outcome, tag) = await ClaimSharedAsync(caller.Name, request.RequestId, hash!, count, ownTag.Value, context.CancellationToken);
                    if (outcome == ClaimOutcome.Conflict) throw AlreadyUsed(request.RequestId);
                    if (outcome == ClaimOutcome.Done)
                    {
                        client.CloseRequest(ownTag.Value);
                        ownTag = null;
                        claim!.TrySetResult();
                        return new V1.PublishResponse { RequestId = request.RequestId, Accepted = count };
                    }

                    sharedClaim = true;
                    publishAs = tag;
                    if (tag != ownTag)
                    {
                        // Taken over: published under the first gateway's tag; this gateway's own is not used.
                        client.CloseRequest(ownTag.Value);
                        ownTag = null;
                    }
                }

                // Admitted events count against the limits until they are stored, however long that takes.
                var lease = limits.Admit(caller.Name, count, context);
                var stored = client.PublishAndWaitAsync(validated, publishAs);
                _ = stored.ContinueWith(_ => lease.Dispose(), TaskScheduler.Default);
                if (claim is not null)
                {
                    var shared = sharedClaim ? sharedIds : null;
                    var callerName = caller.Name;
                    var requestId = request.RequestId;
                    var tag = ownTag;
                    _ = stored.ContinueWith(async t =>
                    {
                        if (!t.IsCompletedSuccessfully)
                        {
                            // Not stored: this request and the retries waiting on it fail, as a publish without an id
                            // would. Its claim stays: a retry takes it over and publishes it again under the same tag.
                            if (tag is { } open) CloseLater(open, mayComeAgain: true);
                            claim.TrySetException(t.Exception?.InnerExceptions ?? [new OperationCanceledException()]);
                            return;
                        }

                        if (shared is not null) await CompleteSharedAsync(shared, callerName, requestId, tag);
                        claim.TrySetResult();
                    }, TaskScheduler.Default).Unwrap();
                    publish = claim.Task;
                }
                else
                {
                    publish = stored;
                }
            }
            catch (Exception e)
            {
                // Refused before anything was published: the id is free for a corrected or later retry.
                if (mine is not null)
                {
                    recent.Forget(id!, mine);
                    claim!.TrySetException(e);
                }

                // A claim taken over keeps its row: part of the request may be stored under the first gateway's tag.
                if (sharedClaim && ownTag is not null) await sharedIds!.ReleaseAsync(caller.Name, request.RequestId, CancellationToken.None);
                if (ownTag is { } unused) client.CloseRequest(unused);
                throw;
            }
        }

        var started = Stopwatch.GetTimestamp();
        try
        {
            await publish.WaitAsync(options.PublishTimeout, context.CancellationToken);
        }
        catch (TimeoutException)
        {
            LogPublishSlow(pipeline.Name, options.PublishTimeout);
            throw new RpcException(new Status(StatusCode.Unavailable,
                $"the events were accepted but not yet stored within {options.PublishTimeout.TotalSeconds:0.#} s (the cluster is slow or unreachable); the gateway keeps delivering them. " +
                (id is null ? "Retrying without a request_id may publish them twice." : "Retry with the same request_id to wait for them: nothing is published twice.")));
        }

        if (request.WaitApplied)
        {
            var keys = request.Columns is { } sent ? (IEnumerable<string>)sent.Keys : request.Events.Select(e => e.Key);
            var left = options.PublishTimeout - Stopwatch.GetElapsedTime(started);
            try
            {
                await client.WaitUntilAppliedAsync(pipeline.Name, keys, context.CancellationToken).WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, context.CancellationToken);
            }
            catch (TimeoutException)
            {
                throw new RpcException(new Status(StatusCode.Unavailable,
                    $"the events were stored but not yet applied within {options.PublishTimeout.TotalSeconds:0.#} s (the keys are behind); they will be applied. " +
                    (id is null ? "Do not publish them again: query later." : "Retry with the same request_id to wait again: nothing is published twice.")));
            }
        }

        return new V1.PublishResponse { RequestId = request.RequestId, Accepted = count };
    }

    /// <summary>
    /// The pipeline, once the caller may use it that way: permission is checked on the name first, so a caller learns
    /// nothing about pipelines it may not use (not even whether they exist), and an unknown name lists only the
    /// pipelines the caller may use.
    /// </summary>
    private async Task<PipelineDefinition> KnownPipelineAsync(Caller caller, Access use, string name)
    {
        if (string.IsNullOrEmpty(name)) throw Invalid("pipeline is missing");
        GatewayAccess.Authorize(caller, use, name);
        var pipelines = await client.GetPipelinesAsync();
        return pipelines.TryGetValue(name, out var pipeline)
            ? pipeline
            : throw new RpcException(new Status(StatusCode.NotFound,
                $"unknown pipeline '{name}' (known: {string.Join(", ", pipelines.Keys.Where(p => caller.May(use, p)).Order(StringComparer.Ordinal))})"));
    }

    /// <summary>Keys one subscription may name at most.</summary>
    public const int MaxSubscribedKeys = 1_000;

    private static RpcException Invalid(string message) => new(new Status(StatusCode.InvalidArgument, message));

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request '{RequestId}' was left unfinished by the gateway that took it (it died or hangs); this gateway publishes it again, and events of it stored before may be applied twice")]
    private partial void LogRequestTakenOver(string requestId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request '{RequestId}' was stored but could not be marked done in the request ledger; a retry of it through another gateway waits for it and then publishes it again after the lease")]
    private partial void LogRequestNotMarked(string requestId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publishing to '{Pipeline}' took longer than {Timeout}; the events are still being delivered")]
    private partial void LogPublishSlow(string pipeline, TimeSpan timeout);
}

