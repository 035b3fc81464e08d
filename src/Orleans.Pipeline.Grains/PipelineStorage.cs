namespace Orleans.Pipeline.Grains;

/// <summary>Names the hosting layer needs to configure the grains.</summary>
public static class PipelineStorage
{
    /// <summary>The key grain's class name, as Orleans' per-class options (collection age) name it.</summary>
    public const string KeyGrainClass = "Orleans.Pipeline.Grains.KeyWindowGrain";
}
