using Orleans.Pipeline.Windowing;

namespace Orleans.Pipeline.Storage;

/// <summary>One stored result and the change that last wrote it.</summary>
public sealed record StoredResult(string Key, WindowResult Result, long ChangeId);

/// <summary>
/// Reads a results store in change order, for subscribers that resume "after change N": a read never passes over a
/// change that is still to commit.
/// </summary>
public interface IResultChangeReader
{
    /// <summary>The latest change of <paramref name="pipeline"/> (0 when there is none): where a subscriber "from now" starts.</summary>
    Task<long> LatestChangeAsync(string pipeline, CancellationToken cancellationToken);

    /// <summary>Up to <paramref name="limit"/> results of <paramref name="pipeline"/> changed after <paramref name="afterChangeId"/>, oldest change first (of <paramref name="keys"/> only, unless empty).</summary>
    Task<IReadOnlyList<StoredResult>> ReadChangesAsync(string pipeline, IReadOnlyList<string> outputNames, long afterChangeId, IReadOnlyCollection<string> keys, int limit, CancellationToken cancellationToken);
}
