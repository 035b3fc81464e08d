using Orleans.Runtime;
using Orleans.Streams;

namespace Orleans.Pipeline.Client;

/// <summary>
/// Publishes events to pipelines and reads their results. Events are validated and grouped per partition of their
/// pipeline (<see cref="PipelineNames.PartitionOf"/>) into items of many keys; each partition sends one item at a
/// time, numbered 1, 2, 3, … with this client's producer id (a retry reuses the number, and the partition applies
/// each once, in order), and keeps at most <see cref="PipelineClientOptions.MaxUnappliedBatches"/> items unapplied.
/// When the pipeline's grains fall behind, <see cref="PublishAsync(string, PipelineEvent, CancellationToken)"/> waits
/// (backpressure); it never drops an event because the system is busy. Dispose (or <see cref="FlushAsync"/>) to
/// send what is buffered; an item that failed for good makes <see cref="FlushAsync"/> throw
/// <see cref="PublishFailedException"/>, so nothing is lost silently.
/// </summary>
/// <remarks>
/// The class is split by concern: this file holds what is shared (the cluster, the pipeline catalog, the partition
/// senders); publishing is in <c>PipelineClient.Publishing.cs</c> (buffers: <see cref="PartitionBuffer"/>; sending:
/// <see cref="PartitionSender"/>; validation in <c>PipelineClient.Validation.cs</c> (<see cref="EventValidator"/>)), reading results in
/// <c>PipelineClient.Results.cs</c>.
/// </remarks>
public sealed partial class PipelineClient : IAsyncDisposable
{
    private readonly IClusterClient _cluster;
    private readonly PipelineClientOptions _options;
    private readonly TimeProvider _time;
    private readonly IStreamProvider _streams;
    private readonly IStreamProvider _resultStreams;
    private readonly Producer _producer = new(Guid.NewGuid());
    private readonly Lock _gate = new();
    private readonly Dictionary<string, PartitionSender[]> _senders = new(StringComparer.Ordinal);
    private Dictionary<string, PipelineDefinition>? _pipelines;
    private Dictionary<string, string[]> _fields = [];

    public PipelineClient(IClusterClient cluster, PipelineClientOptions? options = null, TimeProvider? time = null)
    {
        _cluster = cluster;
        _options = options ?? new PipelineClientOptions();
        if (_options.MaxBatchSize <= 0 || _options.MaxUnappliedBatches <= 0 || _options.MaxAttempts <= 0)
            throw new ArgumentException("batch size, unapplied batches and attempts must be > 0", nameof(options));
        _time = time ?? TimeProvider.System;
        _streams = cluster.GetStreamProvider(PipelineNames.StreamProvider);
        _resultStreams = cluster.GetStreamProvider(PipelineNames.ResultsStreamProvider);
    }

    /// <summary>This client's producer id, carried by every item it sends.</summary>
    public Guid ProducerId => _producer.Id;

    /// <summary>The cluster's pipelines, fetched once.</summary>
    public async Task<IReadOnlyDictionary<string, PipelineDefinition>> GetPipelinesAsync()
    {
        if (_pipelines is { } known) return known;
        var all = await _cluster.GetGrain<IPipelineCatalogGrain>(0).GetPipelinesAsync();
        // Derived once: WindowingDefinition.Fields is computed on each access, too slow for every published event.
        _fields = all.ToDictionary(p => p.Name, p => p.Windowing.Fields.ToArray(), StringComparer.Ordinal);
        return _pipelines = all.ToDictionary(p => p.Name, StringComparer.Ordinal);
    }

    public async ValueTask DisposeAsync() => await FlushAsync();

    /// <summary>The pipeline; once the catalog is known, without an await (or an allocation) per published event.</summary>
    private ValueTask<PipelineDefinition> FindAsync(string pipeline) =>
        _pipelines is { } known ? new(Lookup(known, pipeline)) : FindFirstAsync(pipeline);

    private async ValueTask<PipelineDefinition> FindFirstAsync(string pipeline) => Lookup(await GetPipelinesAsync(), pipeline);

    private static PipelineDefinition Lookup(IReadOnlyDictionary<string, PipelineDefinition> pipelines, string pipeline)
    {
        if (pipeline is null || !pipelines.TryGetValue(pipeline, out var definition))
            throw new UnknownPipelineException($"unknown pipeline '{pipeline}' (known: {string.Join(", ", pipelines.Keys.Order(StringComparer.Ordinal))})");
        return definition;
    }

    /// <summary>The pipeline, when events may be published to it (a chained pipeline reads another's results instead).</summary>
    private ValueTask<PipelineDefinition> FindPublishableAsync(string pipeline) =>
        _pipelines is { } known ? new(Publishable(Lookup(known, pipeline))) : FindPublishableFirstAsync(pipeline);

    private async ValueTask<PipelineDefinition> FindPublishableFirstAsync(string pipeline) => Publishable(await FindAsync(pipeline));

    private static PipelineDefinition Publishable(PipelineDefinition definition) =>
        definition.Input is { } input
            ? throw new ArgumentException($"pipeline '{definition.Name}' reads the results of pipeline '{input.Pipeline}' and takes no events; publish to '{input.Pipeline}'")
            : definition;

    /// <summary>The sender (and buffer) of the key's partition, created on first use.</summary>
    private PartitionSender SenderFor(PipelineDefinition definition, string key) =>
        SenderFor(definition, PipelineNames.PartitionOf(key, definition.Partitions));

    private PartitionSender SenderFor(PipelineDefinition definition, int partition)
    {
        lock (_gate)
        {
            if (!_senders.TryGetValue(definition.Name, out var senders)) _senders[definition.Name] = senders = new PartitionSender[definition.Partitions];
            return senders[partition] ??= NewSender(definition.Name, partition);
        }
    }

    private PartitionSender NewSender(string pipeline, int partition)
    {
        var partitionKey = PipelineNames.PartitionKey(pipeline, partition);
        var target = new ClusterPartitionTarget(
            _streams.GetStream<PartitionBatch>(StreamId.Create(PipelineNames.EventsNamespace, partitionKey)),
            _cluster.GetGrain<IPartitionGrain>(partitionKey));
        return new PartitionSender(new PartitionBuffer(pipeline, partition, _fields[pipeline]), target, _producer, _options, _time);
    }

    /// <summary>Every partition sender created so far.</summary>
    private List<PartitionSender> Senders()
    {
        lock (_gate) return _senders.Values.SelectMany(s => s).OfType<PartitionSender>().ToList();
    }
}
