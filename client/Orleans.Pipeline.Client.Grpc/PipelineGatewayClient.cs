using System.Globalization;
using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using V1 = Orleans.Pipeline.Gateway.V1;

namespace Orleans.Pipeline.Client;

/// <summary>Tuning of a <see cref="PipelineGatewayClient"/>.</summary>
public sealed class PipelineGatewayClientOptions
{
    /// <summary>The caller's API key, sent as <c>x-api-key</c> (none when the gateway has no keys).</summary>
    public string? ApiKey { get; set; }

    /// <summary>How long one publish may keep retrying (rate limits, load shedding, an unavailable cluster) before it fails.</summary>
    public TimeSpan RetryBudget { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>First delay after UNAVAILABLE; doubled per attempt (RESOURCE_EXHAUSTED waits as long as the gateway says).</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(100);
}

/// <summary>
/// The gateway from .NET, over gRPC: for producers outside the cluster. Each publish carries a request id that stays
/// the same across its retries, so the gateway publishes it once however often it is sent. RESOURCE_EXHAUSTED (rate
/// limit, load shedding) is waited out for as long as the gateway's <c>retry-after-ms</c> says, UNAVAILABLE with
/// exponential backoff, both within <see cref="PipelineGatewayClientOptions.RetryBudget"/>; bad input, unknown
/// pipelines and refused keys fail at once.
/// </summary>
public sealed class PipelineGatewayClient(GrpcChannel channel, PipelineGatewayClientOptions? options = null) : IDisposable
{
    private readonly V1.PipelineGateway.PipelineGatewayClient _grpc = new(channel);
    private readonly PipelineGatewayClientOptions _options = options ?? new PipelineGatewayClientOptions();
    private long _throttled;

    /// <summary>Connects to a gateway address (e.g. <c>http://localhost:5080</c>).</summary>
    public PipelineGatewayClient(Uri address, PipelineGatewayClientOptions? options = null)
        : this(GrpcChannel.ForAddress(address), options)
    {
    }

    /// <summary>Times a publish was refused with RESOURCE_EXHAUSTED and retried after the gateway's delay.</summary>
    public long ThrottledAttempts => Interlocked.Read(ref _throttled);

    /// <summary>
    /// Publishes events to one pipeline (all or nothing: an invalid event fails the call with INVALID_ARGUMENT naming
    /// it); returns once the gateway has stored them all. Events that all carry the same fields travel in columns
    /// (<c>EventColumns</c>: no message or map per event), others one message each.
    /// </summary>
    public Task<V1.PublishResponse> PublishAsync(string pipeline, IEnumerable<GatewayEvent> events, CancellationToken cancellationToken = default) =>
        PublishAsync(pipeline, events, waitApplied: false, cancellationToken);

    /// <summary>
    /// Publishes events as <see cref="PublishAsync(string, IEnumerable{GatewayEvent}, CancellationToken)"/> does; with
    /// <paramref name="waitApplied"/>, returns only once every event is applied to its key's windows, so that a query
    /// right after sees them (read your writes).
    /// </summary>
    public async Task<V1.PublishResponse> PublishAsync(string pipeline, IEnumerable<GatewayEvent> events, bool waitApplied, CancellationToken cancellationToken = default)
    {
        var list = events as IReadOnlyList<GatewayEvent> ?? events.ToList();
        var request = new V1.PublishRequest { Pipeline = pipeline, RequestId = Guid.NewGuid().ToString("N"), WaitApplied = waitApplied };
        if (Columns(list) is { } columns)
        {
            request.Columns = columns;
        }
        else
        {
            foreach (var e in list)
            {
                var wire = new V1.Event { Key = e.Key ?? "", TimeMs = e.TimeMs };
                if (e.Fields is not null) foreach (var (name, value) in e.Fields) wire.Fields[name] = value;
                request.Events.Add(wire);
            }
        }

        var deadline = DateTime.UtcNow + _options.RetryBudget;
        var delay = _options.RetryDelay;
        while (true)
        {
            try
            {
                return await _grpc.PublishAsync(request, Headers(), cancellationToken: cancellationToken);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.ResourceExhausted or StatusCode.Unavailable && DateTime.UtcNow < deadline)
            {
                TimeSpan wait;
                if (e.StatusCode == StatusCode.ResourceExhausted)
                {
                    Interlocked.Increment(ref _throttled);
                    wait = RetryAfter(e) ?? delay;
                }
                else
                {
                    wait = delay;
                    delay *= 2;
                }

                await Task.Delay(wait + TimeSpan.FromMilliseconds(Random.Shared.Next(0, 20)), cancellationToken);
            }
        }
    }

    /// <summary>The events in columns, or null when they do not all carry the same field names.</summary>
    internal static V1.EventColumns? Columns(IReadOnlyList<GatewayEvent> events)
    {
        if (events.Count == 0 || events[0].Fields is not { Count: > 0 } first) return null;
        var columns = new V1.EventColumns();
        var names = first.Keys.ToArray();
        var values = new V1.FieldColumn[names.Length];
        for (var f = 0; f < names.Length; f++) columns.Fields.Add(values[f] = new V1.FieldColumn { Name = names[f] });
        foreach (var e in events)
        {
            if (e.Fields is null || e.Fields.Count != names.Length) return null;
            columns.Keys.Add(e.Key ?? "");
            columns.TimeMs.Add(e.TimeMs);
            for (var f = 0; f < names.Length; f++)
            {
                if (!e.Fields.TryGetValue(names[f], out var value)) return null;
                values[f].Values.Add(value);
            }
        }

        return columns;
    }

    /// <summary>A key's open and recent closed windows.</summary>
    public async Task<V1.KeyWindows> QueryAsync(string pipeline, string key, CancellationToken cancellationToken = default) =>
        await _grpc.QueryKeyAsync(new V1.QueryKeyRequest { Pipeline = pipeline, Key = key }, Headers(), cancellationToken: cancellationToken);

    /// <summary>The pipelines this caller may use.</summary>
    public async Task<IReadOnlyList<V1.PipelineInfo>> ListPipelinesAsync(CancellationToken cancellationToken = default) =>
        (await _grpc.ListPipelinesAsync(new V1.ListPipelinesRequest(), Headers(), cancellationToken: cancellationToken)).Pipelines;

    /// <summary>The pipeline's results (optionally some keys; in cluster mode optionally resumed after a change id).</summary>
    public async IAsyncEnumerable<V1.ResultBatch> SubscribeAsync(string pipeline, IEnumerable<string>? keys = null, long? afterChangeId = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var request = new V1.SubscribeRequest { Pipeline = pipeline };
        if (keys is not null) request.Keys.Add(keys);
        if (afterChangeId is { } after) request.AfterChangeId = after;
        using var call = _grpc.Subscribe(request, Headers(), cancellationToken: cancellationToken);
        await foreach (var batch in call.ResponseStream.ReadAllAsync(cancellationToken)) yield return batch;
    }

    public void Dispose() => channel.Dispose();

    private Grpc.Core.Metadata? Headers() => _options.ApiKey is { } key ? new Grpc.Core.Metadata { { "x-api-key", key } } : null;

    private static TimeSpan? RetryAfter(RpcException e)
    {
        var value = e.Trailers.GetValue("retry-after-ms");
        return value is not null && long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? TimeSpan.FromMilliseconds(ms) : null;
    }
}
