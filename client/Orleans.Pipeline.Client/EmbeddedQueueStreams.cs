using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Configuration;
using Orleans.Providers.Streams.Common;
using Orleans.Runtime;
using Orleans.Streams;

namespace Orleans.Pipeline.Client;

/// <summary>
/// The embedded mode's event stream provider: queues in the silo's memory (<see cref="IEmbeddedQueueGrain"/>) that
/// hold at most a configured number of events and make producers wait when full, and a cache that holds an item
/// only until every consumer has passed it and stops reading when consumers fall behind. Items are passed by
/// reference within the process (nothing is serialized), so a large partition item costs no more than a small one.
/// Memory is bounded by queues × capacity plus the cache.
/// </summary>
public sealed class EmbeddedQueueAdapterFactory(string name, int queues, IGrainFactory grains, ILoggerFactory loggers, int cacheSize)
    : IQueueAdapterFactory, IQueueAdapter
{
    private readonly HashRingBasedStreamQueueMapper _mapper = new(new HashRingStreamQueueMapperOptions { TotalQueueCount = queues }, name);
    private readonly SimpleQueueAdapterCache _cache = new(new SimpleQueueCacheOptions { CacheSize = cacheSize }, name, loggers);

    /// <summary>Registers the provider named <paramref name="name"/> on a silo.</summary>
    public static IQueueAdapterFactory Create(IServiceProvider services, string name, int queues, int cacheSize = 64) =>
        new EmbeddedQueueAdapterFactory(name, queues, services.GetRequiredService<IGrainFactory>(), services.GetRequiredService<ILoggerFactory>(), cacheSize);

    /// <summary>The queue grain of a queue.</summary>
    public static string QueueKey(string provider, QueueId queue) => $"{provider}/{queue}";

    public string Name => name;

    public bool IsRewindable => false;

    public StreamProviderDirection Direction => StreamProviderDirection.ReadWrite;

#pragma warning disable CS0618, CS0672 // the legacy overloads are the ones every Orleans version calls
    public Task<IQueueAdapter> CreateAdapter() => Task.FromResult<IQueueAdapter>(this);
#pragma warning restore CS0618, CS0672

    public IQueueAdapterCache GetQueueAdapterCache() => _cache;

    public IStreamQueueMapper GetStreamQueueMapper() => _mapper;

    public Task<IStreamFailureHandler> GetDeliveryFailureHandler(QueueId queueId) =>
        Task.FromResult<IStreamFailureHandler>(new NoOpStreamDeliveryFailureHandler(faultOnError: false));

    public Task QueueMessageBatchAsync<T>(StreamId streamId, IEnumerable<T> events, StreamSequenceToken? token, Dictionary<string, object>? requestContext)
    {
        if (token is not null) throw new ArgumentException("the embedded event queue is not rewindable: enqueue without a sequence token", nameof(token));
        var items = events.Cast<object>().ToArray();
        var count = items.Sum(e => e is PartitionBatch batch ? batch.Count : 1);
        var queue = _mapper.GetQueueForStream(streamId);
        return grains.GetGrain<IEmbeddedQueueGrain>(QueueKey(name, queue)).EnqueueAsync(new QueuedEvents(streamId.GetNamespace() ?? "", streamId.GetKeyAsString(), items, count, requestContext));
    }

    public IQueueAdapterReceiver CreateReceiver(QueueId queueId) => new Receiver(grains.GetGrain<IEmbeddedQueueGrain>(QueueKey(name, queueId)));

    private sealed class Receiver(IEmbeddedQueueGrain queue) : IQueueAdapterReceiver
    {
        public Task Initialize(TimeSpan timeout) => Task.CompletedTask;

#pragma warning disable CS0618, CS0672
        public async Task<IList<IBatchContainer>> GetQueueMessagesAsync(int maxCount)
        {
            var taken = await queue.DequeueAsync(maxCount < 0 ? 64 : maxCount);
            return taken.Select(IBatchContainer (q) => new EmbeddedBatchContainer(q)).ToList();
        }

        public Task MessagesDeliveredAsync(IList<IBatchContainer> messages) => Task.CompletedTask;
#pragma warning restore CS0618, CS0672

        public Task Shutdown(TimeSpan timeout) => Task.CompletedTask;
    }
}

/// <summary>One queue entry as the stream runtime sees it.</summary>
[GenerateSerializer, Alias("pipeline.embedded-batch-container")]
public sealed class EmbeddedBatchContainer : IBatchContainer
{
    public EmbeddedBatchContainer(QueuedEvents entry)
    {
        Entry = entry;
        Token = new EventSequenceTokenV2(entry.Sequence);
        StreamId = StreamId.Create(entry.StreamNamespace, entry.StreamKey);
    }

    [Id(0)] public QueuedEvents Entry { get; }

    [Id(1)] public EventSequenceTokenV2 Token { get; }

    [Id(2)] public StreamId StreamId { get; }

    public StreamSequenceToken SequenceToken => Token;

    public IEnumerable<Tuple<T, StreamSequenceToken>> GetEvents<T>() =>
        Entry.Events.OfType<T>().Select((e, i) => Tuple.Create(e, (StreamSequenceToken)Token.CreateSequenceTokenForEvent(i)));

    public bool ImportRequestContext()
    {
        if (Entry.RequestContext is null) return false;
        RequestContextExtensions.Import(Entry.RequestContext);
        return true;
    }
}
