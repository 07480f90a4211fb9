"""The insurance customer-service assistant: retrieve → generate → guard → answer."""
