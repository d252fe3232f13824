import NewtonTraining

extension TrainingMetrics {
    /// Records one iteration of a running job.
    public func record(_ record: IterationRecord) {
        recordIteration(
            objective: record.objective, gradientNorm: record.gradientNorm, cgIterations: record.cgIterations,
            lambda: record.lambda, testAccuracy: record.testAccuracy, disagreement: record.disagreement,
            countsAsIteration: record.iteration > 0)
    }
}
