"""The run's spine: profiles, the registry of data sets and teachers, the table of steps, a run's
folders and files, a saved model's layout and the typed ``summary.json``. Imports no stage package."""
