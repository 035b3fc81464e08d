using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Testing;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// One throwaway PostgreSQL server for every test of the collection; each test makes its own database. Without
/// PostgreSQL binaries the fixture fails, with the install hint, and so does every test that needs it.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private LocalPostgres? _server;
    private int _databases;

    public LocalPostgres Server => _server ?? throw new InvalidOperationException("the PostgreSQL fixture did not start");

    public async Task InitializeAsync() => _server = await LocalPostgres.StartAsync();

    /// <summary>A new, empty database.</summary>
    public Task<string> NewDatabaseAsync() => Server.CreateDatabaseAsync($"pipeline_test_{Interlocked.Increment(ref _databases)}");

    /// <summary>A new database with the current schema.</summary>
    public async Task<string> NewMigratedDatabaseAsync()
    {
        var connectionString = await NewDatabaseAsync();
        await PostgresSchema.MigrateAsync(connectionString);
        return connectionString;
    }

    public async Task DisposeAsync()
    {
        if (_server is not null) await _server.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class PostgresCollection : ICollectionFixture<PostgresServer>
{
    public const string Name = "postgres";
}
