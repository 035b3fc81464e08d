using Npgsql;
using Orleans.Pipeline.Grains;
using Orleans.Pipeline.Storage;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// The group-committed key state of cluster mode: many keys' writes in one transaction, each only if its version is
/// the one its grain read; a stale write is refused alone, and its results never reach the results table.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class KeyStateStoreTests(PostgresServer postgres)
{
    private static SinkWrite Output(string key, double value, int revision = 1) =>
        new("tumbling", key, [new WindowResult(0, 10, revision, revision == 1 ? ResultKind.Final : ResultKind.Update, 1, [value], 10)], [], []);

    [Fact]
    public async Task Concurrent_writes_share_transactions_and_a_stale_write_is_refused_alone_with_its_results()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        await using var dataSource = NpgsqlDataSource.Create(database);
        var catalog = new PipelineCatalog(PipelineCluster.Pipelines);
        await using var store = new PostgresKeyStateStore(dataSource, new PostgresResultSink(dataSource, catalog));

        var first = await Task.WhenAll(Enumerable.Range(0, 500).Select(i =>
            store.WriteAsync(new KeyStateWrite("tumbling", $"k{i}", [(byte)i], 0, Output($"k{i}", i), Durable: true))));
        Assert.All(first, version => Assert.Equal(1, version));
        var (groups, requests) = store.WriteCounts;
        Assert.Equal(500, requests);
        Assert.True(groups < 500, $"500 concurrent writes took {groups} transactions: nothing was grouped");

        // k0 written again by its grain (expects 1), and by a second, stale activation (expects 0), at once.
        var fresh = store.WriteAsync(new KeyStateWrite("tumbling", "k0", [42], 1, Output("k0", 100_100, revision: 2), Durable: true));
        var stale = store.WriteAsync(new KeyStateWrite("tumbling", "k1", [43], 0, Output("k1", 999_999, revision: 2), Durable: true));
        Assert.Equal(2, await fresh);
        await Assert.ThrowsAsync<KeyStateConflictException>(() => stale);

        Assert.Equal(2, (await store.ReadAsync("tumbling", "k0"))!.Version);
        Assert.Equal([42], (await store.ReadAsync("tumbling", "k0"))!.Payload);
        var k1 = (await store.ReadAsync("tumbling", "k1"))!;
        Assert.Equal(1, k1.Version);
        Assert.Equal([1], k1.Payload);
        Assert.Null(await store.ReadAsync("tumbling", "never-written"));
        // The stale write's results were rolled back with it; the fresh one's landed.
        Assert.Equal(1, await PostgresQueries.ScalarAsync(database, "SELECT count(*) FROM pipeline_window_results WHERE key = 'k0' AND revision = 2 AND output_values::text LIKE '%100100%'"));
        Assert.Equal(1, await PostgresQueries.ScalarAsync(database, "SELECT count(*) FROM pipeline_window_results WHERE key = 'k1' AND revision = 1"));
        Assert.Equal(0, await PostgresQueries.ScalarAsync(database, "SELECT count(*) FROM pipeline_window_results WHERE output_values::text LIKE '%999999%'"));
        Assert.Equal(500, await PostgresQueries.ScalarAsync(database, "SELECT count(*) FROM pipeline_window_results"));
    }
}
