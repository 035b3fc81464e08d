using System.Buffers.Binary;
using System.Numerics;

namespace Orleans.Pipeline.Windowing.Sketches;

/// <summary>
/// A HyperLogLog sketch that counts the distinct values among the doubles added to it.
/// </summary>
/// <remarks>
/// <para>
/// Two representations. A new sketch is <em>sparse</em>: it keeps the distinct 64-bit hashes themselves (sorted), so
/// <see cref="Estimate"/> is exact (up to 64-bit hash collisions, which are negligible) while at most
/// <see cref="SparseLimit"/> distinct values have been added. The distinct value after that turns it <em>dense</em>:
/// <see cref="RegisterCount"/> one-byte registers (precision <see cref="Precision"/>), with relative standard error
/// <see cref="StandardError"/>. A sparse sketch serializes as 8 bytes per hash, so at most half the size of a dense one.
/// </para>
/// <para>
/// The representation depends only on the set of values added, never on their order or on how sketches were
/// merged: a sketch is sparse exactly when it has seen at most <see cref="SparseLimit"/> distinct hashes, and its dense
/// registers are a pure function of the set. So <see cref="Merge"/> gives the same state, and the same estimate, as
/// adding all values to one sketch.
/// </para>
/// <para>
/// <c>-0.0</c> and <c>0.0</c> count as one value. The hash is part of the persisted format: sketches are merged across
/// silos and restored from storage, so it must not change.
/// </para>
/// </remarks>
[GenerateSerializer, Alias("pipeline.hll")]
public sealed class HyperLogLogSketch
{
    /// <summary>Bits of the hash that pick the register.</summary>
    public const int Precision = 12;

    /// <summary>Registers of a dense sketch (2^<see cref="Precision"/>), one byte each.</summary>
    public const int RegisterCount = 1 << Precision;

    /// <summary>Distinct values a sketch counts exactly before it turns dense.</summary>
    /// <remarks>256 hashes × 8 bytes = 2 KiB, half the 4 KiB of the dense registers.</remarks>
    public const int SparseLimit = 256;

    /// <summary>Relative standard error of a dense estimate: 1.04 / √<see cref="RegisterCount"/> ≈ 1.63%.</summary>
    public const double StandardError = 1.04 / 64;

    private const int InitialSparseCapacity = 8;

    /// <summary>Largest register value: the 52 hash bits after the index all zero, plus one.</summary>
    private const int MaxRank = 64 - Precision + 1;

    /// <summary>α∞·m², α∞ = 1 / (2 ln 2): the constant of the estimator in <see cref="Estimate"/>.</summary>
    private static readonly double AlphaInfinityMSquared = (double)RegisterCount * RegisterCount / (2 * Math.Log(2));

    /// <summary>Dense registers (max rank per register); <c>null</c> while the sketch is sparse.</summary>
    [Id(0)]
    private byte[]? _registers;

    /// <summary>Sparse hashes, sorted ascending and distinct, in <c>[0, _sparseCount)</c>; spare capacity after that.</summary>
    [NonSerialized]
    private ulong[]? _sparse;

    [NonSerialized]
    private int _sparseCount;

    /// <summary>An empty (sparse) sketch.</summary>
    public HyperLogLogSketch()
    {
    }

    /// <summary>Whether the sketch still keeps exact hashes (at most <see cref="SparseLimit"/> distinct values seen).</summary>
    public bool IsSparse => _registers is null;

    /// <summary>
    /// Serialized form of the sparse hashes: <c>8 × count</c> bytes, little-endian, ascending; <c>null</c> when the
    /// sketch is dense or empty. Only the serializer uses it: it holds exactly the live hashes (no spare capacity).
    /// </summary>
    [Id(1)]
    internal byte[]? SparseHashes
    {
        get
        {
            if (_registers is not null || _sparseCount == 0) return null;
            var bytes = new byte[_sparseCount * sizeof(ulong)];
            for (var i = 0; i < _sparseCount; i++)
                BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(i * sizeof(ulong)), _sparse![i]);
            return bytes;
        }
        set
        {
            if (value is null || value.Length == 0)
            {
                _sparse = null;
                _sparseCount = 0;
                return;
            }

            if (value.Length % sizeof(ulong) != 0 || value.Length / sizeof(ulong) > SparseLimit)
                throw new InvalidOperationException($"Corrupt HyperLogLog sketch: {value.Length} bytes of sparse hashes.");
            var count = value.Length / sizeof(ulong);
            var hashes = new ulong[count];
            for (var i = 0; i < count; i++)
                hashes[i] = BinaryPrimitives.ReadUInt64LittleEndian(value.AsSpan(i * sizeof(ulong)));
            _sparse = hashes;
            _sparseCount = count;
        }
    }

    /// <summary>Adds one value. Adding a value the sketch has already seen changes nothing.</summary>
    public void Add(double value) => AddHash(Hash(value));

    /// <summary>
    /// Folds <paramref name="other"/> into this sketch (set union). The result is the state that adding every value of
    /// both sketches to one sketch would give. <paramref name="other"/> is not changed and shares no storage with this
    /// sketch afterwards.
    /// </summary>
    public void Merge(HyperLogLogSketch other)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (ReferenceEquals(other, this)) return;

        if (other._registers is { } otherRegisters)
        {
            var registers = ToDense();
            for (var i = 0; i < registers.Length; i++)
                if (otherRegisters[i] > registers[i]) registers[i] = otherRegisters[i];
        }
        else
        {
            for (var i = 0; i < other._sparseCount; i++) AddHash(other._sparse![i]);
        }
    }

    /// <summary>
    /// Estimated number of distinct values, rounded to a whole number. Exact while <see cref="IsSparse"/>; otherwise
    /// unbiased, within a relative <see cref="StandardError"/> about two times in three and within four standard errors
    /// practically always, at every cardinality. Does not change the sketch.
    /// </summary>
    /// <remarks>
    /// The dense estimate is Ertl's "improved raw estimator" (O. Ertl, New cardinality estimation algorithms for
    /// HyperLogLog sketches, 2017): the harmonic-mean estimator α∞·m² / z over the register histogram C, where the
    /// empty registers and the saturated ones enter through the correction series σ and τ:
    /// <c>z = m·σ(C₀/m) + Σ_{k=1..q} C_k·2^−k + m·τ(1 − C_{q+1}/m)·2^−q</c>, q = 64 − <see cref="Precision"/>.
    /// For small cardinalities it behaves like linear counting over the empty registers, and it needs neither a switch
    /// point nor empirical bias tables. (The classic raw estimator with a linear-counting switch at 2.5·m is biased by
    /// about +1.6% just above the switch, around 10 000 distinct values at this precision.)
    /// </remarks>
    public double Estimate()
    {
        if (_registers is not { } registers) return _sparseCount;

        Span<int> histogram = stackalloc int[MaxRank + 1];
        foreach (var register in registers) histogram[register]++;

        // Horner-style from the top: z = m·τ(…)·2^−q + Σ C_k·2^−k, then the empty registers' term.
        var z = RegisterCount * Tau(1 - (double)histogram[MaxRank] / RegisterCount);
        for (var k = MaxRank - 1; k >= 1; k--) z = 0.5 * (z + histogram[k]);
        z += RegisterCount * Sigma((double)histogram[0] / RegisterCount);
        return Math.Round(AlphaInfinityMSquared / z);
    }

    private void AddHash(ulong hash)
    {
        if (_registers is { } registers)
        {
            AddToRegisters(registers, hash);
            return;
        }

        var sparse = _sparse;
        var position = sparse is null ? -1 : Array.BinarySearch(sparse, 0, _sparseCount, hash);
        if (position >= 0) return;
        position = ~position;

        if (_sparseCount == SparseLimit)
        {
            AddToRegisters(ToDense(), hash);
            return;
        }

        if (sparse is null || _sparseCount == sparse.Length)
        {
            var grown = new ulong[Math.Min(SparseLimit, Math.Max(InitialSparseCapacity, _sparseCount * 2))];
            if (sparse is not null) Array.Copy(sparse, grown, _sparseCount);
            _sparse = sparse = grown;
        }

        Array.Copy(sparse, position, sparse, position + 1, _sparseCount - position);
        sparse[position] = hash;
        _sparseCount++;
    }

    /// <summary>Turns the sketch dense (if it is not already) and returns its registers.</summary>
    private byte[] ToDense()
    {
        if (_registers is { } existing) return existing;

        var registers = new byte[RegisterCount];
        for (var i = 0; i < _sparseCount; i++) AddToRegisters(registers, _sparse![i]);
        _registers = registers;
        _sparse = null;
        _sparseCount = 0;
        return registers;
    }

    private static void AddToRegisters(byte[] registers, ulong hash)
    {
        var index = (int)(hash >> (64 - Precision));
        // Rank = 1 + leading zeros of the remaining 52 bits; the sentinel bit caps it at MaxRank when they are all zero.
        var rank = (byte)(BitOperations.LeadingZeroCount((hash << Precision) | (1UL << (Precision - 1))) + 1);
        if (rank > registers[index]) registers[index] = rank;
    }

    /// <summary>
    /// 64-bit hash of a value: its IEEE bits (with <c>-0.0</c> folded into <c>0.0</c>) offset by a constant, then put
    /// through a rotate-xor / multiply-xorshift finalizer (in the style of Evensen's rrmxmx), which avalanches every input
    /// bit into every output bit, so structured inputs (consecutive integers, values differing only in the exponent) hash
    /// like random ones. Persisted format: do not change.
    /// </summary>
    internal static ulong Hash(double value)
    {
        if (value == 0) value = 0; // -0.0 == 0.0, so this maps -0.0 to +0.0.
        var x = BitConverter.DoubleToUInt64Bits(value) + 0x9E3779B97F4A7C15UL;
        x ^= BitOperations.RotateRight(x, 49) ^ BitOperations.RotateRight(x, 24);
        x *= 0x9FB21C651E98DF25UL;
        x ^= x >> 28;
        x *= 0x9FB21C651E98DF25UL;
        x ^= x >> 28;
        return x;
    }

    /// <summary>σ(x) = x + Σ_{k≥1} x^(2^k)·2^(k−1) for the share x of empty registers; ∞ when all are empty.</summary>
    private static double Sigma(double x)
    {
        if (x == 1) return double.PositiveInfinity;

        var weight = 1.0;
        var sum = x;
        double previous;
        do
        {
            x *= x;
            previous = sum;
            sum += x * weight;
            weight += weight;
        }
        while (sum != previous);

        return sum;
    }

    /// <summary>τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))²·2^−k) / 3 for the share x of registers not saturated.</summary>
    private static double Tau(double x)
    {
        if (x == 0 || x == 1) return 0;

        var weight = 1.0;
        var sum = 1 - x;
        double previous;
        do
        {
            x = Math.Sqrt(x);
            previous = sum;
            weight *= 0.5;
            sum -= (1 - x) * (1 - x) * weight;
        }
        while (sum != previous);

        return sum / 3;
    }
}
