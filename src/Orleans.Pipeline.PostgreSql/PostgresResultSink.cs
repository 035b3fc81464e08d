using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Npgsql;
using NpgsqlTypes;
using Orleans.Pipeline.Storage;
using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.PostgreSql;

/// <summary>
/// Cluster mode's results store: upserts every emitted window into <c>pipeline_window_results</c> (a row only moves
/// forward in revision), and inserts late events and dead letters once each; one round trip, one transaction per
/// grain step, or for a whole group of them (<see cref="AddCommands"/>, used by <see cref="PostgresKeyStateStore"/>).
/// Writing the same step twice (a redelivered batch) changes nothing.
/// </summary>
public sealed class PostgresResultSink(NpgsqlDataSource dataSource, PipelineCatalog catalog) : IResultSink
{
    private const string UpsertResults = """
        INSERT INTO pipeline_window_results AS r
            (pipeline, key, window_start, window_end, revision, kind, event_count, watermark, output_values)
        SELECT t.p, t.k, t.s, t.e, t.rev, t.kind, t.n, t.w, t.v::jsonb
        FROM unnest(@pipelines, @keys, @starts, @ends, @revisions, @kinds, @counts, @watermarks, @values) AS t(p, k, s, e, rev, kind, n, w, v)
        ON CONFLICT (pipeline, key, window_start, window_end) DO UPDATE
        SET revision = excluded.revision, kind = excluded.kind, event_count = excluded.event_count,
            watermark = excluded.watermark, output_values = excluded.output_values,
            change_id = nextval('pipeline_result_changes'), updated_at = now()
        WHERE excluded.revision > r.revision
        """;

    private const string InsertLate = """
        INSERT INTO pipeline_late_events
            (pipeline, key, producer_id, batch_sequence, event_index, event_time, watermark, field_values)
        SELECT t.pl, t.k, t.p, t.s, t.i, t.time, t.w, t.v::jsonb
        FROM unnest(@pipelines, @keys, @producers, @sequences, @indexes, @times, @watermarks, @values) AS t(pl, k, p, s, i, time, w, v)
        ON CONFLICT DO NOTHING
        """;

    private const string InsertDeadLetters = """
        INSERT INTO pipeline_dead_letters (pipeline, key, producer_id, batch_sequence, event_index, reason, detail)
        SELECT t.pl, t.k, t.p, t.s, t.i, t.r, to_jsonb(t.d)
        FROM unnest(@pipelines, @keys, @producers, @sequences, @indexes, @reasons, @details) AS t(pl, k, p, s, i, r, d)
        ON CONFLICT DO NOTHING
        """;

    private readonly Dictionary<string, string[]> _outputNames = catalog.All.ToDictionary(p => p.Name, p => p.OutputNames(catalog.Registry).ToArray(), StringComparer.Ordinal);
    // The names as JSON property names, escaped once: each row of output_values / field_values writes them as they are.
    private readonly Dictionary<string, JsonEncodedText[]> _outputKeys = catalog.All.ToDictionary(p => p.Name, p => Keys(p.OutputNames(catalog.Registry)), StringComparer.Ordinal);
    private readonly Dictionary<string, JsonEncodedText[]> _fieldKeys = catalog.All.ToDictionary(p => p.Name, p => Keys(p.Windowing.Fields), StringComparer.Ordinal);

    /// <inheritdoc />
    public async Task WriteAsync(SinkWrite write, CancellationToken cancellationToken = default)
    {
        if (write.IsEmpty) return;
        await using var batch = dataSource.CreateBatch();
        AddCommands(batch, [write]);
        // One batch is one implicit transaction: the step's rows land together or not at all.
        await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Adds the commands that record <paramref name="writes"/> (of distinct keys) to <paramref name="batch"/>; the
    /// caller commits right after them. Results go last, behind <see cref="ChangeOrderLock"/>: a transaction draws
    /// its change ids only while it holds that lock, and holds it until it commits, so change ids become visible in
    /// the order they were drawn, and a reader resuming "after change N" can never pass over a change that commits
    /// later with a smaller id.
    /// </summary>
    public void AddCommands(NpgsqlBatch batch, IReadOnlyList<SinkWrite> writes)
    {
        if (writes.Any(w => w.LateEvents.Count > 0)) batch.BatchCommands.Add(LateCommand(writes));
        if (writes.Any(w => w.DeadLetters.Count > 0)) batch.BatchCommands.Add(DeadLetterCommand(writes));
        if (writes.Any(w => w.Results.Count > 0))
        {
            var order = new NpgsqlBatchCommand("SELECT pg_advisory_xact_lock(@lock)");
            order.Parameters.AddWithValue("lock", ChangeOrderLock);
            batch.BatchCommands.Add(order);
            batch.BatchCommands.Add(ResultsCommand(writes));
        }
    }

    /// <summary>The transaction-scoped advisory lock that orders result changes by commit.</summary>
    public const long ChangeOrderLock = 0x5069_7065_6C69_6E65; // "Pipeline"

    /// <summary>Records the pipelines this silo runs (names of their values), for readers of the results table.</summary>
    public async Task RegisterPipelinesAsync(CancellationToken cancellationToken = default)
    {
        await using var batch = dataSource.CreateBatch();
        foreach (var pipeline in catalog.All)
        {
            var command = new NpgsqlBatchCommand("""
                INSERT INTO pipeline_definitions (pipeline, output_names, definition) VALUES (@pipeline, @names, @definition::jsonb)
                ON CONFLICT (pipeline) DO UPDATE SET output_names = excluded.output_names, definition = excluded.definition, updated_at = now()
                """);
            command.Parameters.AddWithValue("pipeline", pipeline.Name);
            command.Parameters.AddWithValue("names", _outputNames[pipeline.Name]);
            command.Parameters.AddWithValue("definition", JsonSerializer.Serialize(pipeline));
            batch.BatchCommands.Add(command);
        }

        if (batch.BatchCommands.Count > 0) await batch.ExecuteNonQueryAsync(cancellationToken);
    }

    private NpgsqlBatchCommand ResultsCommand(IReadOnlyList<SinkWrite> writes)
    {
        var rows = new List<(string Pipeline, string Key, WindowResult Result, JsonEncodedText[] Names)>();
        var latest = new Dictionary<(long, long), WindowResult>();
        foreach (var write in writes)
        {
            // A step may emit one window more than once (early partial, then final): the last emission wins, and one
            // INSERT … ON CONFLICT must not touch a row twice.
            latest.Clear();
            foreach (var result in write.Results)
            {
                if (!latest.TryGetValue((result.Start, result.End), out var held) || result.Revision > held.Revision)
                    latest[(result.Start, result.End)] = result;
            }

            var names = _outputKeys.GetValueOrDefault(write.Pipeline) ?? [];
            foreach (var result in latest.Values) rows.Add((write.Pipeline, write.Key, result, names));
        }

        using var json = new JsonObjects();
        var command = new NpgsqlBatchCommand(UpsertResults);
        command.Parameters.AddWithValue("pipelines", rows.Select(r => r.Pipeline).ToArray());
        command.Parameters.AddWithValue("keys", rows.Select(r => r.Key).ToArray());
        command.Parameters.AddWithValue("starts", rows.Select(r => r.Result.Start).ToArray());
        command.Parameters.AddWithValue("ends", rows.Select(r => r.Result.End).ToArray());
        command.Parameters.AddWithValue("revisions", rows.Select(r => r.Result.Revision).ToArray());
        command.Parameters.AddWithValue("kinds", rows.Select(r => KindName(r.Result.Kind)).ToArray());
        command.Parameters.AddWithValue("counts", rows.Select(r => r.Result.EventCount).ToArray());
        command.Parameters.AddWithValue("watermarks", rows.Select(r => r.Result.Watermark).ToArray());
        command.Parameters.Add(new NpgsqlParameter("values", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = rows.Select(r => json.Write(r.Names, r.Result.Values, r.Result.Labels)).ToArray() });
        return command;
    }

    private NpgsqlBatchCommand LateCommand(IReadOnlyList<SinkWrite> writes)
    {
        var late = writes.SelectMany(w => w.LateEvents.Select(l => (w.Pipeline, w.Key, Late: l, Fields: _fieldKeys.GetValueOrDefault(w.Pipeline) ?? []))).ToArray();
        using var json = new JsonObjects();
        var command = new NpgsqlBatchCommand(InsertLate);
        command.Parameters.AddWithValue("pipelines", late.Select(l => l.Pipeline).ToArray());
        command.Parameters.AddWithValue("keys", late.Select(l => l.Key).ToArray());
        command.Parameters.AddWithValue("producers", late.Select(l => l.Late.ProducerId).ToArray());
        command.Parameters.AddWithValue("sequences", late.Select(l => l.Late.Sequence).ToArray());
        command.Parameters.AddWithValue("indexes", late.Select(l => l.Late.Index).ToArray());
        command.Parameters.AddWithValue("times", late.Select(l => l.Late.Event.TimeMs).ToArray());
        command.Parameters.AddWithValue("watermarks", late.Select(l => l.Late.Event.Watermark).ToArray());
        command.Parameters.Add(new NpgsqlParameter("values", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = late.Select(l => json.Write(l.Fields, l.Late.Event.Values)).ToArray() });
        return command;
    }

    private static NpgsqlBatchCommand DeadLetterCommand(IReadOnlyList<SinkWrite> writes)
    {
        var letters = writes.SelectMany(w => w.DeadLetters.Select(d => (w.Pipeline, w.Key, Letter: d))).ToArray();
        var command = new NpgsqlBatchCommand(InsertDeadLetters);
        command.Parameters.AddWithValue("pipelines", letters.Select(l => l.Pipeline).ToArray());
        command.Parameters.AddWithValue("keys", letters.Select(l => l.Key).ToArray());
        command.Parameters.AddWithValue("producers", letters.Select(l => l.Letter.ProducerId).ToArray());
        command.Parameters.AddWithValue("sequences", letters.Select(l => l.Letter.Sequence).ToArray());
        command.Parameters.AddWithValue("indexes", letters.Select(l => l.Letter.Index).ToArray());
        command.Parameters.AddWithValue("reasons", letters.Select(l => l.Letter.Reason).ToArray());
        command.Parameters.Add(new NpgsqlParameter("details", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = letters.Select(l => l.Letter.Detail).ToArray() });
        return command;
    }

    /// <summary>The kind as the table spells it.</summary>
    public static string KindName(ResultKind kind) => kind switch
    {
        ResultKind.Partial => "partial",
        ResultKind.Final => "final",
        ResultKind.Update => "update",
        ResultKind.Retraction => "retraction",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    private static JsonEncodedText[] Keys(IEnumerable<string> names) => names.Select(n => JsonEncodedText.Encode(n)).ToArray();

    /// <summary>
    /// Writes JSON objects of name → value, one per row of a command, through one reused buffer and writer. A value
    /// that is not finite (NaN: no value; ±∞) is null, as JSON has no such numbers, and a reader takes null as NaN.
    /// Finite doubles are written in their shortest round-trip form, so they read back exactly: jsonb keeps them as
    /// exact decimals, but for the sign of −0 (numeric has no negative zero). A value without a name (more values than
    /// names) is named <c>v</c> and its index.
    /// </summary>
    /// <summary>The suffix of the property holding a labelled value's key (<see cref="WindowResult.Labels"/>) in <c>output_values</c>.</summary>
    public const string LabelSuffix = "_key";

    private sealed class JsonObjects : IDisposable
    {
        private readonly ArrayBufferWriter<byte> _buffer = new(256);
        private readonly Utf8JsonWriter _writer;

        public JsonObjects() => _writer = new Utf8JsonWriter(_buffer);

        public string Write(JsonEncodedText[] names, double[] values, string?[]? labels = null)
        {
            _buffer.ResetWrittenCount();
            _writer.Reset(_buffer);
            _writer.WriteStartObject();
            for (var i = 0; i < values.Length; i++)
            {
                if (i < names.Length) _writer.WritePropertyName(names[i]);
                else _writer.WritePropertyName(string.Create(CultureInfo.InvariantCulture, $"v{i}"));
                if (double.IsFinite(values[i])) _writer.WriteNumberValue(values[i]);
                else _writer.WriteNullValue();
            }

            // A labelled value's key (top-N): beside it, as "<name>_key".
            for (var i = 0; labels is not null && i < labels.Length && i < names.Length; i++)
            {
                if (labels[i] is { } label) _writer.WriteString(names[i].Value + LabelSuffix, label);
            }

            _writer.WriteEndObject();
            _writer.Flush();
            return Encoding.UTF8.GetString(_buffer.WrittenSpan);
        }

        public void Dispose() => _writer.Dispose();
    }
}
