using Orleans.Pipeline.Client;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.Scenarios;

/// <summary>The scenarios in embedded mode: one in-process silo, in-memory queues, state in a SQLite file, results on the live feed.</summary>
public sealed class EmbeddedScenarios : PipelineScenarios
{
    protected override async Task<IScenarioCluster> StartAsync() => await EmbeddedScenarioCluster.StartAsync(null, new ResultCollector());

    private sealed class EmbeddedScenarioCluster : IScenarioCluster
    {
        private readonly PipelineCluster _cluster;
        private readonly PipelineClient _feed;
        private readonly List<ResultSubscription> _subscriptions;
        private readonly ResultCollector _collected;

        private EmbeddedScenarioCluster(PipelineCluster cluster, PipelineClient feed, List<ResultSubscription> subscriptions, ResultCollector collected)
        {
            _cluster = cluster;
            _feed = feed;
            _subscriptions = subscriptions;
            _collected = collected;
        }

        /// <summary>Starts a silo on <paramref name="databasePath"/> (a new file when null) and follows every pipeline's results into <paramref name="collected"/>.</summary>
        public static async Task<EmbeddedScenarioCluster> StartAsync(string? databasePath, ResultCollector collected)
        {
            var cluster = await PipelineCluster.StartAsync(databasePath, configure: o => o.Pipelines.Add(ScenarioPipelines.Flood));
            var feed = cluster.NewClient();
            List<ResultSubscription> subscriptions = [];
            foreach (var pipeline in PipelineCluster.Pipelines)
                subscriptions.Add(await feed.SubscribeAsync(pipeline.Name, batch => { collected.Add(batch); return Task.CompletedTask; }));
            return new EmbeddedScenarioCluster(cluster, feed, subscriptions, collected);
        }

        public IClusterClient Client => _cluster.Client;

        public PipelineClient NewClient(PipelineClientOptions? options = null) => _cluster.NewClient(options);

        public Task<Dictionary<(long, long), WindowResult>> ResultsAsync(string pipeline, string key) => Task.FromResult(_collected.View(pipeline, key));

        public async Task<long> LateEventsRecordedAsync(string pipeline, string key) =>
            (await Client.GetGrain<IKeyWindowGrain>(PipelineNames.StreamKey(pipeline, key)).GetWindowsAsync()).LateEvents;

        public Task<long?> DeadLettersStoredAsync(string pipeline, string key, string reason) => Task.FromResult<long?>(null);

        public async Task<IScenarioCluster> RestartAsync()
        {
            // The live feed is not durable: what it had not handed over yet is read from the silo's recent-results log
            // (a consumer that must not miss results resumes from it, or uses cluster mode's results table).
            foreach (var pipeline in PipelineCluster.Pipelines)
            {
                for (var after = 0L; ;)
                {
                    var page = await _feed.ReadRecentResultsAsync(pipeline.Name, after, 10_000, TimeSpan.Zero);
                    if (page.Batches.Length == 0) break;
                    foreach (var batch in page.Batches) _collected.Add(batch);
                    after = page.FirstPosition + page.Batches.Length - 1;
                }
            }

            var path = _cluster.DatabasePath;
            await DisposeAsync();
            return await StartAsync(path, _collected);
        }

        public async ValueTask DisposeAsync()
        {
            foreach (var subscription in _subscriptions) await subscription.DisposeAsync();
            await _feed.DisposeAsync();
            await _cluster.DisposeAsync();
        }
    }
}
