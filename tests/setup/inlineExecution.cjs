// The "inline" test project: models load with execution 'inline' unless a test says otherwise.
process.env.SAFE_ENSEMBLE_EXECUTION = 'inline';
