import ChatCore
import Foundation
import Storage

/// The HR tools the model can call, all on one `SQLDatabase`.
public enum HRTools {
    public static func all(database: any SQLDatabase) -> [any Tool] {
        [GetEmployees(database: database), GetEmployee(database: database), GetDepartments(database: database),
         GetSalaryStats(database: database), GetIncrementDistribution(database: database)]
    }
}
