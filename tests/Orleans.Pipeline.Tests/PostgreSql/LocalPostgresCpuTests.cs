using Npgsql;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// The throwaway server reports the CPU time it used (what <c>bench</c> and <c>nexmark</c> add to their PostgreSQL
/// rows' per-core figures): it grows with work the server does for its clients.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class LocalPostgresCpuTests(PostgresServer postgres)
{
    [Fact]
    public async Task The_servers_cpu_time_grows_with_the_work_its_backends_do()
    {
        var before = postgres.Server.CpuTime();
        await using (var connection = new NpgsqlConnection(await postgres.NewDatabaseAsync()))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT sum(sqrt(g::float8)) FROM generate_series(1, 3000000) g", connection);
            await command.ExecuteScalarAsync();
        }

        var after = postgres.Server.CpuTime();
        Assert.True(after > before && before > TimeSpan.Zero, $"CPU time {before} before the query, {after} after it");
    }
}
