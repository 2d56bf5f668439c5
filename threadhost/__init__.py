"""threadhost: AI conversation threads hosted as Dapr virtual actors."""
