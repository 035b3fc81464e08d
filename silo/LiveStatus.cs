using System.Diagnostics;
using Spectre.Console;

namespace Orleans.Pipeline.Silo;

/// <summary>
/// Progress of a long-running command, on its own task so that it keeps coming while the work waits: on a terminal a
/// small table redrawn every second; with output redirected (a log, CI) one plain line every <c>plainEvery</c>.
/// </summary>
internal sealed class LiveStatus : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _running;

    private LiveStatus(string title, Func<IReadOnlyList<(string Name, string Value)>> snapshot, TimeSpan plainEvery)
    {
        _running = Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive
            ? Task.Run(() => PlainAsync(title, snapshot, plainEvery))
            : Task.Run(() => LiveAsync(title, snapshot));
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
                Console.WriteLine($"{title} t={clock.Elapsed.TotalSeconds,5:F0}s  " + string.Join("  ", snapshot().Select(v => $"{v.Name} {v.Value}")));
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
                foreach (var (name, value) in snapshot()) table.AddRow(Markup.Escape(name), Markup.Escape(value));
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

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _running;
        _stop.Dispose();
    }
}
