using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.RateLimiting;
using Grpc.Core;

namespace Orleans.Pipeline.Gateway;

/// <summary>
/// Backpressure at the door: a token bucket per caller (events per second, with a burst) and one cap on events in
/// flight through this gateway. A request beyond either is refused at once with RESOURCE_EXHAUSTED and a
/// <c>retry-after-ms</c> trailer, never queued: memory stays bounded however hard callers push.
/// </summary>
internal sealed class GatewayLimits : IDisposable
{
    private readonly PartitionedRateLimiter<string> _perCaller;
    private readonly PartitionedRateLimiter<string> _readsPerCaller;
    private readonly ConcurrencyLimiter _inFlight;
    private readonly ConcurrentDictionary<string, int> _subscribers = new(StringComparer.Ordinal);
    private readonly int _maxSubscribers;

    public GatewayLimits(GatewayOptions options)
    {
        var events = Bucket(options.EventsPerSecondPerCaller, options.BurstPerCaller);
        _perCaller = PartitionedRateLimiter.Create<string, string>(caller => RateLimitPartition.GetTokenBucketLimiter(caller, _ => events));
        var reads = Bucket(options.ReadsPerSecondPerCaller, options.ReadsPerSecondPerCaller * 2);
        _readsPerCaller = PartitionedRateLimiter.Create<string, string>(caller => RateLimitPartition.GetTokenBucketLimiter(caller, _ => reads));
        _inFlight = new ConcurrencyLimiter(new ConcurrencyLimiterOptions { PermitLimit = options.MaxInFlightEvents, QueueLimit = 0 });
        _maxSubscribers = options.MaxSubscriptionsPerCaller;
    }

    /// <summary>
    /// A token bucket that refills at exactly <paramref name="perSecond"/> tokens a second and holds at most
    /// <paramref name="burst"/>: a tenth of the rate every 100 ms, or, below 10 a second, one token every
    /// 1/<paramref name="perSecond"/> s. Where the rate is not a multiple of 10 the period shrinks to match (15/s: one
    /// token every 66.7 ms), so no positive rate is rounded to another.
    /// </summary>
    internal static TokenBucketRateLimiterOptions Bucket(int perSecond, int burst)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perSecond, 1);
        var tokens = Math.Max(1, perSecond / 10);
        return new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = tokens,
            // Rounded up: the bucket may refill a hair slower than the rate, never faster.
            ReplenishmentPeriod = TimeSpan.FromTicks((TimeSpan.TicksPerSecond * tokens + perSecond - 1) / perSecond),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
    }

    /// <summary>Admits one read (a query or a new subscription) of <paramref name="caller"/>, or throws RESOURCE_EXHAUSTED.</summary>
    public void AdmitRead(string caller, ServerCallContext context)
    {
        using var rate = _readsPerCaller.AttemptAcquire(caller, 1);
        if (!rate.IsAcquired)
        {
            var wait = rate.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromMilliseconds(100);
            throw Exhausted("read-rate", context, wait, $"rate limit: caller '{caller}' may read again after {wait.TotalMilliseconds:0} ms");
        }
    }

    /// <summary>Holds one of <paramref name="caller"/>'s subscription slots until disposed, or throws RESOURCE_EXHAUSTED.</summary>
    public IDisposable AdmitSubscriber(string caller, ServerCallContext context)
    {
        var count = _subscribers.AddOrUpdate(caller, 1, (_, n) => n + 1);
        if (count > _maxSubscribers)
        {
            _subscribers.AddOrUpdate(caller, 0, (_, n) => n - 1);
            throw Exhausted("subscriptions", context, TimeSpan.FromSeconds(1), $"caller '{caller}' already has {_maxSubscribers} subscriptions open (MaxSubscriptionsPerCaller)");
        }

        return new Slot(() => _subscribers.AddOrUpdate(caller, 0, (_, n) => n - 1));
    }

    private sealed class Slot(Action release) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) release();
        }
    }

    /// <summary>Admits <paramref name="events"/> events of <paramref name="caller"/>, or throws RESOURCE_EXHAUSTED. Dispose the lease when they are stored.</summary>
    public RateLimitLease Admit(string caller, int events, ServerCallContext context)
    {
        using (var rate = _perCaller.AttemptAcquire(caller, events))
        {
            if (!rate.IsAcquired)
            {
                var wait = rate.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromMilliseconds(100);
                throw Exhausted("publish-rate", context, wait, $"rate limit: caller '{caller}' may publish {events} more events after {wait.TotalMilliseconds:0} ms");
            }
        }

        var lease = _inFlight.AttemptAcquire(events);
        if (!lease.IsAcquired)
        {
            lease.Dispose();
            throw Exhausted("in-flight", context, TimeSpan.FromMilliseconds(200), "the gateway is at its limit of events in flight; retry shortly");
        }

        return lease;
    }

    private static RpcException Exhausted(string limit, ServerCallContext context, TimeSpan retryAfter, string message)
    {
        PipelineMeter.GatewayRefusals.Add(1, new KeyValuePair<string, object?>("limit", limit));
        var milliseconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        context.ResponseTrailers.Add("retry-after-ms", milliseconds);
        return new RpcException(new Status(StatusCode.ResourceExhausted, message), new Grpc.Core.Metadata { { "retry-after-ms", milliseconds } });
    }

    public void Dispose()
    {
        _perCaller.Dispose();
        _readsPerCaller.Dispose();
        _inFlight.Dispose();
    }
}
