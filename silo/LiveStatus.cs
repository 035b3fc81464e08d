using System.Diagnostics;
using Spectre.Console;

namespace Orleans.Pipeline.CommandLine;

/// <summary>
/// Progress of a long-running command, on its own task so that it keeps coming while the work waits: on a terminal a
/// small table redrawn every second; with output redirected (a log, CI) one plain line every <c>plainEvery</c>.
/// </summary>
internal sealed class LiveStatus : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _running;
    private readonly bool _live;
    private int _disposed;
    private readonly List<string> _lines = [];

    /// <summary>Lines of <see cref="Log"/> the live table shows at most (the latest).</summary>
    private const int ShownLines = 6;

    private LiveStatus(string title, Func<IReadOnlyList<(string Name, string Value)>> snapshot, TimeSpan plainEvery)
    {
        _live = !(Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive);
        _running = _live
            ? Task.Run(() => LiveAsync(title, snapshot))
            : Task.Run(() => PlainAsync(title, snapshot, plainEvery));
    }

    /// <summary>
    /// A line worth keeping (a fault, a step): printed at once with plain output; on a terminal shown under the table
    /// (the latest few) and printed in full when the status ends, so the table is never torn by other output.
    /// </summary>
    public void Log(string line)
    {
        if (!_live)
        {
            Console.WriteLine(line);
            return;
        }

        lock (_lines) _lines.Add(line);
    }

    /// <summary>Starts reporting <paramref name="snapshot"/> until disposed.</summary>
    public static LiveStatus Start(string title, Func<IReadOnlyList<(string Name, string Value)>> snapshot, TimeSpan? plainEvery = null) =>
        new(title, snapshot, plainEvery ?? TimeSpan.FromSeconds(5));

    private async Task PlainAsync(string title, Func<IReadOnlyList<(string Name, string Value)>> snapshot, TimeSpan every)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                await Task.Delay(every, _stop.Token);
                Console.WriteLine($"{title} t={clock.Elapsed.TotalSeconds,5:F0}s  " + string.Join("  ", Read(snapshot).Select(v => $"{v.Name} {v.Value}")));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task LiveAsync(string title, Func<IReadOnlyList<(string Name, string Value)>> snapshot)
    {
        var clock = Stopwatch.StartNew();
        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(title)).AddColumn("").AddColumn(new TableColumn("").RightAligned());
        await AnsiConsole.Live(table).AutoClear(false).StartAsync(async context =>
        {
            while (!_stop.IsCancellationRequested)
            {
                table.Rows.Clear();
                table.AddRow("elapsed", $"{clock.Elapsed.TotalSeconds:F0} s");
                foreach (var (name, value) in Read(snapshot)) table.AddRow(Markup.Escape(name), Markup.Escape(value));
                lock (_lines)
                    foreach (var line in _lines.Skip(Math.Max(0, _lines.Count - ShownLines)))
                        table.AddRow("", Markup.Escape(line));
                context.Refresh();
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), _stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });
    }

    /// <summary>The snapshot, or a note when reading it raced the work it describes (a list changing under it).</summary>
    private static IReadOnlyList<(string Name, string Value)> Read(Func<IReadOnlyList<(string Name, string Value)>> snapshot)
    {
        try
        {
            return snapshot();
        }
        catch (InvalidOperationException)
        {
            return [("status", "changing …")];
        }
    }

    /// <summary>Stops reporting (once; later calls do nothing).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync();
        await _running;
        _stop.Dispose();
        if (_live)
            lock (_lines)
                foreach (var line in _lines) Console.WriteLine(line);
    }
}
