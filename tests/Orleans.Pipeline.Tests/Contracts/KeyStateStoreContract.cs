using Npgsql;
using Orleans.Pipeline.Hosting;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Storage;
using Orleans.Pipeline.Tests.PostgreSql;

namespace Orleans.Pipeline.Tests.Contracts;

/// <summary>
/// What every <see cref="IKeyStateStore"/> promises the key grains, run against each implementation: a key never
/// written reads as nothing; a write returns the next version and reads back (before it is durable, too); writes of
/// many keys at once are all kept; and what was written durably is there after the store is opened again.
/// </summary>
public abstract class KeyStateStoreContract
{
    /// <summary>A store over fresh storage; <see cref="ReopenAsync"/> opens it again over the same storage.</summary>
    protected abstract Task<IKeyStateStore> OpenAsync();

    /// <summary>Disposes <paramref name="store"/> and opens a new one over the same storage.</summary>
    protected abstract Task<IKeyStateStore> ReopenAsync(IKeyStateStore store);

    private static KeyStateWrite Write(string key, byte[] payload, long expected, bool durable = true) => new("tumbling", key, payload, expected, null, durable);

    [Fact]
    public async Task A_key_never_written_reads_as_nothing()
    {
        var store = await OpenAsync();
        try
        {
            Assert.Null(await store.ReadAsync("tumbling", "never"));
        }
        finally
        {
            await DisposeAsync(store);
        }
    }

    [Fact]
    public async Task A_write_returns_the_next_version_and_reads_back_even_before_it_is_durable()
    {
        var store = await OpenAsync();
        try
        {
            Assert.Equal(1, await store.WriteAsync(Write("k", [1, 2, 3], 0)));
            Assert.Equal(2, await store.WriteAsync(Write("k", [4], 1, durable: false)));
            var read = await store.ReadAsync("tumbling", "k");
            Assert.NotNull(read);
            Assert.Equal(2L, read.Version);
            Assert.Equal([4], read.Payload);
            // Keys of another pipeline are other keys.
            Assert.Null(await store.ReadAsync("hopping", "k"));
        }
        finally
        {
            await DisposeAsync(store);
        }
    }

    [Fact]
    public async Task Writes_of_many_keys_at_once_are_all_kept_and_survive_reopening_the_store()
    {
        var store = await OpenAsync();
        var versions = await Task.WhenAll(Enumerable.Range(0, 2_000).Select(i => store.WriteAsync(Write($"k{i}", BitConverter.GetBytes(i), 0))));
        Assert.All(versions, v => Assert.Equal(1, v));
        store = await ReopenAsync(store);
        try
        {
            for (var i = 0; i < 2_000; i += 97)
            {
                var read = await store.ReadAsync("tumbling", $"k{i}");
                Assert.NotNull(read);
                Assert.Equal((1L, i), (read.Version, BitConverter.ToInt32(read.Payload)));
            }
        }
        finally
        {
            await DisposeAsync(store);
        }
    }

    private static async Task DisposeAsync(IKeyStateStore store)
    {
        if (store is IAsyncDisposable disposable) await disposable.DisposeAsync();
    }
}

/// <summary>Embedded mode's store: SQLite, written behind in groups.</summary>
public sealed class SqliteKeyStateStoreContract : KeyStateStoreContract
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "orleans-pipeline-tests", Guid.NewGuid().ToString("N"), "state.db");

    protected override Task<IKeyStateStore> OpenAsync() => Task.FromResult<IKeyStateStore>(new SqliteKeyStateStore(SqliteStateSchema.Ensure(_path)));

    protected override async Task<IKeyStateStore> ReopenAsync(IKeyStateStore store)
    {
        await ((SqliteKeyStateStore)store).DisposeAsync();
        return await OpenAsync();
    }
}

/// <summary>Cluster mode's store: PostgreSQL, group-committed write-through.</summary>
[Collection(PostgresCollection.Name)]
public sealed class PostgresKeyStateStoreContract(PostgresServer postgres) : KeyStateStoreContract
{
    private string? _database;

    protected override async Task<IKeyStateStore> OpenAsync()
    {
        _database ??= await postgres.NewMigratedDatabaseAsync();
        var dataSource = NpgsqlDataSource.Create(_database);
        return new PostgresKeyStateStore(dataSource, new PostgresResultSink(dataSource, new PipelineCatalog(PipelineCluster.Pipelines)));
    }

    protected override async Task<IKeyStateStore> ReopenAsync(IKeyStateStore store)
    {
        await ((PostgresKeyStateStore)store).DisposeAsync();
        return await OpenAsync();
    }
}
