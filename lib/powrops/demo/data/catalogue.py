"""The exercise catalogue: global exercises, user-specific ones and the two-day program."""

from __future__ import annotations

from typing import NamedTuple


class CatalogueEntry(NamedTuple):
    name: str
    muscle_group: str
    base_kg: float  # working weight of an average novice; 0: bodyweight
    reps: tuple[int, ...]


COMPOUNDS = (
    CatalogueEntry("Squat", "legs", 80, (5, 5, 6, 8)),
    CatalogueEntry("Bench Press", "chest", 60, (5, 5, 6, 8)),
    CatalogueEntry("Deadlift", "back", 100, (3, 5, 5)),
    CatalogueEntry("Overhead Press", "shoulders", 40, (5, 6, 8)),
    CatalogueEntry("Barbell Row", "back", 55, (5, 6, 8)),
)
ACCESSORIES = (
    CatalogueEntry("Biceps Curl", "arms", 25, (8, 10, 12)),
    CatalogueEntry("Lateral Raise", "shoulders", 8, (10, 12)),
    CatalogueEntry("Leg Press", "legs", 120, (8, 10, 12)),
    CatalogueEntry("Pull-up", "back", 0, (5, 6, 8, 10)),
    CatalogueEntry("Triceps Pushdown", "arms", 25, (8, 10, 12)),
    CatalogueEntry("Romanian Deadlift", "legs", 70, (8, 10)),
    CatalogueEntry("Incline Dumbbell Press", "chest", 22.5, (8, 10, 12)),
    CatalogueEntry("Leg Curl", "legs", 35, (10, 12)),
    CatalogueEntry("Calf Raise", "legs", 60, (10, 12)),
    CatalogueEntry("Face Pull", "shoulders", 20, (10, 12)),
    CatalogueEntry("Dip", "chest", 0, (6, 8, 10, 12)),
    CatalogueEntry("Lunge", "legs", 20, (8, 10, 12)),
    CatalogueEntry("Hip Thrust", "glutes", 80, (8, 10)),
    CatalogueEntry("Lat Pulldown", "back", 50, (8, 10, 12)),
    CatalogueEntry("Cable Row", "back", 45, (8, 10, 12)),
)
CUSTOM = (
    CatalogueEntry("Landmine Press", "shoulders", 25, (8, 10)),
    CatalogueEntry("Sled Push", "legs", 60, (6, 8)),
    CatalogueEntry("Zercher Squat", "legs", 60, (5, 6, 8)),
    CatalogueEntry("Trap Bar Deadlift", "back", 100, (5, 6)),
    CatalogueEntry("Cable Crossover", "chest", 15, (10, 12)),
    CatalogueEntry("Hammer Curl", "arms", 12.5, (8, 10, 12)),
    CatalogueEntry("Front Squat", "legs", 60, (5, 6, 8)),
    CatalogueEntry("Arnold Press", "shoulders", 15, (8, 10, 12)),
)
CATALOGUE = COMPOUNDS + ACCESSORIES
PROGRAM_DAYS = ((0, 1, 4), (2, 3))  # A: squat, bench, row; B: deadlift, overhead press
NOTES = ("Felt strong", "Short on time", "Gym was busy", "Slept badly", "New personal best")
