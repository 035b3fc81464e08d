using System.Text.Json;
using Npgsql;
using Orleans.Pipeline.Storage;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.PostgreSql;

/// <summary>
/// Reads the results table in change order, for subscribers that resume "after change N". Writers draw change ids
/// under a lock held until they commit (<see cref="PostgresResultSink.ChangeOrderLock"/>), so ids become visible in
/// order: a read never passes over a change that is still to commit, and needs no settling delay.
/// </summary>
public sealed class PostgresResultReader(NpgsqlDataSource dataSource) : IResultChangeReader
{
    /// <inheritdoc />
    public async Task<long> LatestChangeAsync(string pipeline, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("SELECT coalesce(max(change_id), 0) FROM pipeline_window_results WHERE pipeline = @pipeline");
        command.Parameters.AddWithValue("pipeline", pipeline);
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    /// <inheritdoc />
    public async Task<IReadOnlyList<StoredResult>> ReadChangesAsync(string pipeline, IReadOnlyList<string> outputNames, long afterChangeId, IReadOnlyCollection<string> keys, int limit, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand("""
            SELECT key, window_start, window_end, revision, kind, event_count, watermark, output_values::text, change_id
            FROM pipeline_window_results
            WHERE pipeline = @pipeline AND change_id > @after
              AND (cardinality(@keys) = 0 OR key = ANY(@keys))
            ORDER BY change_id
            LIMIT @limit
            """);
        command.Parameters.AddWithValue("pipeline", pipeline);
        command.Parameters.AddWithValue("after", afterChangeId);
        command.Parameters.AddWithValue("keys", keys.ToArray());
        command.Parameters.AddWithValue("limit", limit);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var results = new List<StoredResult>();
        while (await reader.ReadAsync(cancellationToken))
        {
            using var json = JsonDocument.Parse(reader.GetString(7));
            var values = outputNames.Select(n => json.RootElement.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN).ToArray();
            var kind = Enum.Parse<ResultKind>(reader.GetString(4), ignoreCase: true);
            var labels = outputNames.Select(n => json.RootElement.TryGetProperty(n + PostgresResultSink.LabelSuffix, out var l) && l.ValueKind == JsonValueKind.String ? l.GetString() : null).ToArray();
            results.Add(new StoredResult(reader.GetString(0),
                new WindowResult(reader.GetInt64(1), reader.GetInt64(2), reader.GetInt32(3), kind, reader.GetInt64(5), values, reader.GetInt64(6),
                    labels.Any(l => l is not null) ? labels : null),
                reader.GetInt64(8)));
        }

        return results;
    }
}
