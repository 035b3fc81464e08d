using Orleans.Runtime;

namespace Orleans.Pipeline.Grains;

/// <summary>
/// The periodic loop of a silo service that wakes keys (<see cref="KeyWakeups"/>, <see cref="ChainWatermarks"/>):
/// started by the first word a key leaves, a tick every <paramref name="period"/>, and stopped when the silo starts
/// to stop, since its keys are deactivating then and a wake would place them again.
/// </summary>
internal sealed class SiloLoop(string name, TimeSpan period, Func<CancellationToken, Task> tick) : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private Task? _task;
    private int _disposed;

    /// <summary>Whether the loop has been told to stop.</summary>
    public bool Stopping => _stop.IsCancellationRequested;

    /// <summary>Starts the loop unless it runs already.</summary>
    public void EnsureStarted()
    {
        if (Volatile.Read(ref _task) is not null) return;
        lock (_gate) _task ??= Task.Run(RunAsync);
    }

    private async Task RunAsync()
    {
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token)) await tick(_stop.Token);
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Stops the loop at the start of the silo's stop.</summary>
    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(name, ServiceLifecycleStage.Active, _ => Task.CompletedTask, StopAsync);

    private async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        if (Volatile.Read(ref _task) is not { } task) return;
        try
        {
            await task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A wake that failed while stopping: those keys close their windows with their next event or reminder.
        }
    }

    /// <summary>Stops the loop (a service registered under two service types is disposed twice: once is enough).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _stop.Cancel();
    }
}
