using Npgsql;
using Orleans.Pipeline.Grains;
using Orleans.Pipeline.Storage;
using Orleans.Pipeline.PostgreSql;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Tests.PostgreSql;

/// <summary>
/// A reader that resumes "after change N" must never pass over a result: a transaction that drew its change ids
/// before another one and commits after it (a slow commit) must not be skipped.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed class ResultChangeOrderTests(PostgresServer postgres)
{
    [Fact]
    public async Task A_result_committed_late_after_a_later_change_was_read_is_still_read()
    {
        var database = await postgres.NewMigratedDatabaseAsync();
        await using var dataSource = NpgsqlDataSource.Create(database);
        var pipeline = PipelineCluster.Pipelines[0];
        var catalog = new PipelineCatalog([pipeline]);
        var sink = new PostgresResultSink(dataSource, catalog);
        var reader = new PostgresResultReader(dataSource);
        var outputs = pipeline.OutputNames();
        SinkWrite Write(string key) => new(pipeline.Name, key, [new WindowResult(0, 10, 0, ResultKind.Final, 1, [.. outputs.Select(_ => 1.0)], 10)], [], []);

        // A slow writer: its result is written (its change id drawn) but its transaction commits only later.
        await using var slow = await dataSource.OpenConnectionAsync();
        await using var transaction = await slow.BeginTransactionAsync();
        await using (var batch = new NpgsqlBatch(slow, transaction))
        {
            sink.AddCommands(batch, [Write("slow")]);
            await batch.ExecuteNonQueryAsync();
        }

        // A fast writer after it, and a reader that reads (and moves its cursor) while the slow one is still open,
        // longer than a reader could wait for it to settle.
        var fast = sink.WriteAsync(Write("fast"));
        await Task.WhenAny(fast, Task.Delay(TimeSpan.FromSeconds(1.5)));
        var read = new List<StoredResult>();
        var after = 0L;
        foreach (var change in await reader.ReadChangesAsync(pipeline.Name, outputs, after, [], 100, CancellationToken.None))
        {
            read.Add(change);
            after = change.ChangeId;
        }

        await transaction.CommitAsync();
        await fast;
        read.AddRange(await reader.ReadChangesAsync(pipeline.Name, outputs, after, [], 100, CancellationToken.None));

        Assert.Equal(["slow", "fast"], read.Select(r => r.Key));
    }
}
