using Orleans.Pipeline.Client;
using Orleans.Pipeline.Tests.PostgreSql;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.Scenarios;

/// <summary>
/// The scenarios in PostgreSQL mode: two in-process silos with real ADO.NET membership, durable event queues,
/// write-through key state and the results table, in a database of their own on the throwaway server.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresScenarios(PostgresServer postgres) : PipelineScenarios
{
    private const short Silos = 2;

    protected override async Task<IScenarioCluster> StartAsync() =>
        new PostgresScenarioCluster(await PostgresPipelineCluster.StartAsync(await postgres.NewMigratedDatabaseAsync(), Silos, [ScenarioPipelines.Flood]));

    private sealed class PostgresScenarioCluster(PostgresPipelineCluster cluster) : IScenarioCluster
    {
        public IClusterClient Client => cluster.Cluster.Client;

        public PipelineClient NewClient(PipelineClientOptions? options = null) => cluster.NewClient(options);

        public Task<Dictionary<(long, long), WindowResult>> ResultsAsync(string pipeline, string key) => cluster.ReadResultsAsync(pipeline, key);

        public Task<long> LateEventsRecordedAsync(string pipeline, string key) =>
            cluster.ScalarAsync("SELECT count(*) FROM pipeline_late_events WHERE pipeline = @p AND key = @k", ("p", pipeline), ("k", key));

        public async Task<long?> DeadLettersStoredAsync(string pipeline, string key, string reason) =>
            await cluster.ScalarAsync("SELECT count(*) FROM pipeline_dead_letters WHERE pipeline = @p AND key = @k AND reason = @r", ("p", pipeline), ("k", key), ("r", reason));

        public async Task<IScenarioCluster> RestartAsync()
        {
            // Killed, not stopped: what was accepted is in the queues and the tables, nothing in the silos' memory.
            foreach (var silo in cluster.Cluster.Silos.ToList()) await cluster.Cluster.KillSiloAsync(silo);
            await cluster.DisposeAsync();
            return new PostgresScenarioCluster(await PostgresPipelineCluster.StartAsync(cluster.ConnectionString, Silos, [ScenarioPipelines.Flood]));
        }

        public ValueTask DisposeAsync() => cluster.DisposeAsync();
    }
}
