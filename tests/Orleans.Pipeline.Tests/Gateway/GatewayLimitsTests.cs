using System.Globalization;
using Grpc.Core;
using Orleans.Pipeline.Gateway;

namespace Orleans.Pipeline.Tests.Gateway;

/// <summary>
/// The gateway's per-caller token buckets honour every configured rate, also below 10 a second (which used to be
/// rounded up to 10 a second). Nothing here is timed: the requests are made at once, far quicker than one token
/// refills at these rates, so exactly the burst is admitted; the rate shows in the retry-after of the refusals, which
/// is one token's time, 1/rate.
/// </summary>
public sealed class GatewayLimitsTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    public void Reads_below_ten_a_second_are_limited_to_the_configured_rate_not_rounded_up_to_ten(int perSecond)
    {
        using var limits = new GatewayLimits(new GatewayOptions { ReadsPerSecondPerCaller = perSecond });
        var burst = 2 * perSecond;

        var (admitted, retryAfterMs) = Attempt(burst + 10, context => limits.AdmitRead("reader", context));

        Assert.Equal(burst, admitted);
        AssertOneTokensTime(perSecond, retryAfterMs);
        // Another caller has its own bucket.
        limits.AdmitRead("another", new FakeCallContext());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    public void Events_below_ten_a_second_are_limited_to_the_configured_rate_not_rounded_up_to_ten(int perSecond)
    {
        const int burst = 5;
        using var limits = new GatewayLimits(new GatewayOptions { EventsPerSecondPerCaller = perSecond, BurstPerCaller = burst, MaxInFlightEvents = 1_000 });

        var (admitted, retryAfterMs) = Attempt(burst + 10, context => limits.Admit("producer", 1, context).Dispose());

        Assert.Equal(burst, admitted);
        AssertOneTokensTime(perSecond, retryAfterMs);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(10)]
    [InlineData(15)]
    [InlineData(99)]
    [InlineData(1_000)]
    [InlineData(100_000)]
    [InlineData(int.MaxValue / 2)]
    public void Every_positive_rate_refills_its_bucket_at_that_rate(int perSecond)
    {
        var bucket = GatewayLimits.Bucket(perSecond, burst: 100);

        var refill = bucket.TokensPerPeriod / bucket.ReplenishmentPeriod.TotalSeconds;

        Assert.InRange(refill, perSecond * (1 - 1e-6), perSecond * 1.0);
        Assert.InRange(bucket.ReplenishmentPeriod, TimeSpan.FromMilliseconds(50), TimeSpan.FromSeconds(1));
        if (perSecond % 10 == 0) Assert.Equal(TimeSpan.FromMilliseconds(100), bucket.ReplenishmentPeriod);
        Assert.Equal(100, bucket.TokenLimit);
    }

    /// <summary>Makes <paramref name="attempts"/> requests at once: how many were admitted, and the retry-after-ms of each refusal.</summary>
    private static (int Admitted, List<long> RetryAfterMs) Attempt(int attempts, Action<ServerCallContext> admit)
    {
        var admitted = 0;
        var retryAfterMs = new List<long>();
        for (var i = 0; i < attempts; i++)
        {
            var context = new FakeCallContext();
            try
            {
                admit(context);
                admitted++;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
            {
                var trailer = e.Trailers.GetValue("retry-after-ms");
                Assert.Equal(trailer, context.ResponseTrailers.GetValue("retry-after-ms"));
                retryAfterMs.Add(long.Parse(trailer!, CultureInfo.InvariantCulture));
            }
        }

        return (admitted, retryAfterMs);
    }

    /// <summary>Each refusal says to come back after about one token's time (it used to say 100 ms whatever the rate).</summary>
    private static void AssertOneTokensTime(int perSecond, List<long> retryAfterMs)
    {
        Assert.NotEmpty(retryAfterMs);
        var token = 1_000.0 / perSecond;
        Assert.All(retryAfterMs, ms => Assert.InRange(ms, token * 0.9, token * 1.1 + 1));
    }

    /// <summary>Just enough of a call for the limits: trailers to write the retry-after into.</summary>
    private sealed class FakeCallContext : ServerCallContext
    {
        private readonly Grpc.Core.Metadata _trailers = [];

        protected override string MethodCore => "/test/Method";
        protected override string HostCore => "localhost";
        protected override string PeerCore => "ipv4:127.0.0.1:1";
        protected override DateTime DeadlineCore => DateTime.MaxValue;
        protected override Grpc.Core.Metadata RequestHeadersCore => [];
        protected override CancellationToken CancellationTokenCore => CancellationToken.None;
        protected override Grpc.Core.Metadata ResponseTrailersCore => _trailers;
        protected override Status StatusCore { get; set; }
        protected override WriteOptions? WriteOptionsCore { get; set; }
        protected override AuthContext AuthContextCore => new(null, []);

        protected override ContextPropagationToken CreatePropagationTokenCore(ContextPropagationOptions? options) => throw new NotSupportedException();

        protected override Task WriteResponseHeadersAsyncCore(Grpc.Core.Metadata responseHeaders) => Task.CompletedTask;
    }
}
