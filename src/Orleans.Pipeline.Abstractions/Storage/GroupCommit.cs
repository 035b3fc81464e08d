using System.Threading.Channels;

namespace Orleans.Pipeline.Storage;

/// <summary>
/// Group commit: requests that arrive while a commit is running wait and are committed together in the next one, up
/// to <c>maxGroup</c> per commit and <c>concurrency</c> commits at once. Each request completes when its group's
/// commit does (with the commit's outcome for that request), so a caller still sees exactly its own write succeed
/// or fail, and the number of transactions per second stops bounding the number of writes per second.
/// </summary>
/// <typeparam name="TRequest">What one caller writes.</typeparam>
/// <typeparam name="TResult">What one caller learns.</typeparam>
public sealed class GroupCommit<TRequest, TResult> : IAsyncDisposable
{
    private readonly Channel<(TRequest Request, TaskCompletionSource<TResult> Done)> _queue =
        Channel.CreateUnbounded<(TRequest, TaskCompletionSource<TResult>)>(new UnboundedChannelOptions { SingleReader = false });
    private readonly Func<IReadOnlyList<TRequest>, CancellationToken, Task<IReadOnlyList<GroupOutcome<TResult>>>> _commit;
    private readonly int _maxGroup;
    private readonly Task[] _workers;
    private long _groups;
    private long _requests;
    private readonly KeyValuePair<string, object?>? _metricsTag;

    /// <param name="commit">Commits one group; returns one outcome per request, in order.</param>
    /// <param name="maxGroup">Most requests in one commit.</param>
    /// <param name="concurrency">Commits running at once.</param>
    /// <param name="metricsName">When set, each commit's duration and size are recorded under this store name (<see cref="PipelineMeter"/>).</param>
    public GroupCommit(Func<IReadOnlyList<TRequest>, CancellationToken, Task<IReadOnlyList<GroupOutcome<TResult>>>> commit, int maxGroup, int concurrency, string? metricsName = null)
    {
        _metricsTag = metricsName is null ? null : new KeyValuePair<string, object?>("store", metricsName);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxGroup, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrency, 1);
        _commit = commit;
        _maxGroup = maxGroup;
        _workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(RunAsync)).ToArray();
    }

    /// <summary>Commits so far, and requests in them: their ratio is the mean group size.</summary>
    public (long Groups, long Requests) Counts => (Interlocked.Read(ref _groups), Interlocked.Read(ref _requests));

    /// <summary>Joins the next group; completes when it is committed.</summary>
    public Task<TResult> SubmitAsync(TRequest request)
    {
        var done = new TaskCompletionSource<TResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_queue.Writer.TryWrite((request, done))) done.SetException(new ObjectDisposedException(nameof(GroupCommit<TRequest, TResult>)));
        return done.Task;
    }

    private async Task RunAsync()
    {
        var group = new List<(TRequest Request, TaskCompletionSource<TResult> Done)>(_maxGroup);
        var requests = new List<TRequest>(_maxGroup);
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            group.Clear();
            requests.Clear();
            while (group.Count < _maxGroup && _queue.Reader.TryRead(out var item))
            {
                group.Add(item);
                requests.Add(item.Request);
            }

            if (group.Count == 0) continue;
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            try
            {
                var outcomes = await _commit(requests, CancellationToken.None).ConfigureAwait(false);
                for (var i = 0; i < group.Count; i++)
                {
                    if (outcomes[i].Error is { } error) group[i].Done.TrySetException(error);
                    else group[i].Done.TrySetResult(outcomes[i].Result!);
                }
            }
            catch (Exception e)
            {
                foreach (var (_, done) in group) done.TrySetException(e);
            }

            Interlocked.Increment(ref _groups);
            Interlocked.Add(ref _requests, group.Count);
            if (_metricsTag is { } tag)
            {
                PipelineMeter.StateWriteDuration.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds, tag);
                PipelineMeter.StateWriteGroupSize.Record(group.Count, tag);
            }
        }
    }

    /// <summary>Commits what is queued, then stops.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await Task.WhenAll(_workers).ConfigureAwait(false);
    }
}

/// <summary>The outcome of one request in a group: a result, or the error that request alone failed with.</summary>
public readonly record struct GroupOutcome<TResult>(TResult? Result, Exception? Error)
{
    public static GroupOutcome<TResult> Ok(TResult result) => new(result, null);
    public static GroupOutcome<TResult> Failed(Exception error) => new(default, error);
}
